"""Speech LoRAs of the hub LALMs: load them with peft, activate them, merge them into the base weights.

Why a module of its own: two families ship their speech path as a LoRA beside the base language model
(Phi-4-multimodal's ``speech-lora`` folder, Granite Speech's root adapter). Without it the latents come from the
base language model; transformers only warns (Granite) or does nothing (Phi-4). Merging once at load makes the
hooked decoder the speech-tuned one for every input, keeps the engine's hooks on plain modules, and costs
nothing per forward. peft is an optional dependency (the ``lora`` extra); without it these models refuse to load.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

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


@contextmanager
def adapters_not_autoloaded() -> Iterator[None]:
    """``from_pretrained`` without transformers' own adapter loading. Why: transformers 5.24's peft integration
    demands peft >= 0.22, which no release satisfies (0.21.2 is the newest), so with peft installed it fails on
    a repository that carries an ``adapter_config.json`` (Granite Speech); this module loads the adapter with
    peft itself instead."""
    from transformers.integrations import peft as integration

    with mock.patch.object(integration, "is_peft_available", lambda: False):
        yield


def load_and_merge(
    model: torch.nn.Module,
    source: str,
    *,
    adapter_name: str,
    owner: str,
    subfolder: str | None = None,
    load_kwargs: dict[str, Any] | None = None,
) -> tuple[torch.nn.Module, int]:
    """Load the LoRA adapter at ``source`` (hub id or folder, ``subfolder`` inside it) onto ``model`` with peft,
    activate it and merge it into the base weights. Returns the merged plain model (no LoRA modules left) and the
    number of layers the adapter touched; an adapter that touches none is an error."""
    require_peft(owner)
    from peft import PeftModel

    kwargs = {k: v for k, v in (load_kwargs or {}).items() if k in ("revision", "local_files_only")}
    if subfolder:
        kwargs["subfolder"] = subfolder
    try:
        peft_model = PeftModel.from_pretrained(
            model, source, adapter_name=adapter_name, is_trainable=False, **kwargs
        )
    except (ValueError, OSError) as exc:  # no adapter there, or "Target modules ... not found"
        if "adapter_config.json" in str(exc) or isinstance(exc, OSError):
            raise UnsupportedModelError(
                f"{owner}: no LoRA adapter (adapter_config.json) at {source!r} ({subfolder or 'root'}); the "
                f"speech path needs it: {exc}"
            ) from exc
        raise UnsupportedModelError(
            f"{owner}: the LoRA adapter at {source!r} ({subfolder or 'root'}) does not fit "
            f"{type(model).__name__}: {exc}"
        ) from exc
    layers = lora_layers(peft_model, adapter_name)
    if not layers:
        raise UnsupportedModelError(
            f"{owner}: LoRA adapter {adapter_name!r} touches no layer of {type(model).__name__}; its target "
            "modules do not match this model class"
        )
    peft_model.set_adapter(adapter_name)
    return peft_model.merge_and_unload(), len(layers)
