"""The catalogue factory of the hub entries: native transformers LALMs, Ultravox and ``hf:<hub id>``."""

from __future__ import annotations

from benchmark.core.errors import UnsupportedModelError
from benchmark.models.base import ModelAdapter
from benchmark.models.hf_families import (
    Gemma3nAdapter,
    GraniteSpeechAdapter,
    Phi4MultimodalAdapter,
    Qwen3ASRAdapter,
    QwenOmniThinkerAdapter,
    VoxtralAdapter,
    VoxtralRealtimeAdapter,
)
from benchmark.models.hf_lalm import GenericHubAdapter, HubLALMAdapter
from benchmark.models.hf_recipes import RECIPES
from benchmark.models.ultravox import VARIANTS, build_ultravox

#: family -> adapter class; families not listed use ``HubLALMAdapter``
ADAPTER_CLASSES: dict[str, type[HubLALMAdapter]] = {
    "voxtral": VoxtralAdapter,
    "voxtral-realtime": VoxtralRealtimeAdapter,
    "granite-speech": GraniteSpeechAdapter,
    "phi4-multimodal": Phi4MultimodalAdapter,
    "qwen-omni": QwenOmniThinkerAdapter,
    "qwen3-asr": Qwen3ASRAdapter,
    "gemma3n": Gemma3nAdapter,
}


def hub_names() -> list[str]:
    """Every catalogue name this factory builds (native recipes and Ultravox variants)."""
    return [*RECIPES, *VARIANTS]


def build_adapter(name: str) -> ModelAdapter:
    """Catalogue factory for the hub entries and ``hf:<hub id>``."""
    if name.startswith("hf:"):
        return GenericHubAdapter(name[3:])
    if name.startswith("ultravox-"):
        return build_ultravox(name)
    recipe = RECIPES.get(name)
    if recipe is None:
        raise UnsupportedModelError(
            f"no hub adapter named {name!r}; known: {sorted(hub_names())} or hf:<hub id>"
        )
    return ADAPTER_CLASSES.get(recipe.family, HubLALMAdapter)(recipe)
