"""The catalogue factory of the hub entries: native transformers LALMs, Ultravox and ``hf:<hub id>``."""

from __future__ import annotations

from benchmark.core.errors import UnsupportedModelError
from benchmark.models.base import ModelAdapter
from benchmark.models.hf_lalm import _ADAPTER_CLASSES, RECIPES, GenericHubAdapter, HubLALMAdapter
from benchmark.models.ultravox import VARIANTS, build_ultravox


def build_adapter(name: str) -> ModelAdapter:
    """Catalogue factory for the hub entries and ``hf:<hub id>``."""
    if name.startswith("hf:"):
        return GenericHubAdapter(name[3:])
    if name.startswith("ultravox-"):
        return build_ultravox(name)
    recipe = RECIPES.get(name)
    if recipe is None:
        raise UnsupportedModelError(
            f"no hub adapter named {name!r}; known: {sorted([*RECIPES, *VARIANTS])} or hf:<hub id>"
        )
    return _ADAPTER_CLASSES.get(recipe.family, HubLALMAdapter)(recipe)
