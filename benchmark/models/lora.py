"""Speech LoRAs of the hub LALMs: load them with peft, activate them, merge them into the base weights.

Why a module of its own: two families ship their speech path as a LoRA beside the base language model
(Phi-4-multimodal's ``speech-lora`` folder, Granite Speech's root adapter). Without it the latents come from the
base language model; transformers only warns (Granite) or does nothing (Phi-4). Merging once at load makes the
hooked decoder the speech-tuned one for every input, keeps the engine's hooks on plain modules, and costs
nothing per forward. peft is an optional dependency (the ``lora`` extra); without it these models refuse to load.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from benchmark.core.errors import UnsupportedModelError

EXTRA = "lora"


def peft_available() -> bool:
    return importlib.util.find_spec("peft") is not None


def require_peft(owner: str) -> None:
    """Raise, naming ``owner`` and the extra to install, when peft is missing."""
    if not peft_available():
        raise UnsupportedModelError(
            f"{owner}: its speech path is a LoRA adapter, which needs peft (pip install 'lalm-bench[{EXTRA}]'); "
            "without it the latents would come from the base language model"
        )


def lora_layers(model: torch.nn.Module, adapter_name: str) -> list[torch.nn.Module]:
    """The peft LoRA layers of ``model`` that hold ``adapter_name``."""
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer) and adapter_name in m.lora_A]


def load_and_merge(
    model: torch.nn.Module,
    source: str,
    *,
    adapter_name: str,
    owner: str,
    subfolder: str | None = None,
    load_kwargs: dict[str, Any] | None = None,
) -> int:
    """Load the adapter at ``source`` (hub id or folder, ``subfolder`` inside it) into ``model``, activate it
    and merge it into the base weights. Returns the number of merged layers; zero merged layers is an error
    (the adapter's target modules match nothing in this model class)."""
    require_peft(owner)
    adapter_kwargs = dict(load_kwargs or {})
    if subfolder:
        adapter_kwargs["subfolder"] = subfolder
    if adapter_name not in (getattr(model, "peft_config", None) or {}):
        model.load_adapter(source, adapter_name=adapter_name, adapter_kwargs=adapter_kwargs)
    return merge_loaded(model, adapter_name=adapter_name, owner=owner)


def merge_loaded(model: torch.nn.Module, *, adapter_name: str, owner: str) -> int:
    """Activate an adapter already loaded into ``model`` and merge it; returns the number of merged layers."""
    require_peft(owner)
    layers = lora_layers(model, adapter_name)
    if not layers:
        loaded = sorted(getattr(model, "peft_config", None) or {})
        raise UnsupportedModelError(
            f"{owner}: LoRA adapter {adapter_name!r} touches no layer of {type(model).__name__} "
            f"(adapters loaded: {loaded}); its target modules do not match this model class"
        )
    model.set_adapter(adapter_name)
    model.enable_adapters()
    for layer in layers:
        if adapter_name not in layer.merged_adapters:
            layer.merge(adapter_names=[adapter_name])
    return len(layers)
