"""Model adapters: the offline real models, the paper's LALMs, newer LALMs and any ``hf:<id>``."""

from benchmark.models.catalog import MODELS, get_adapter, list_models

__all__ = ["MODELS", "get_adapter", "list_models"]
