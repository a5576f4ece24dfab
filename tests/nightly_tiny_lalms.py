"""pytest plugin for the nightly's CPU dry run: two tiny LALMs registered as models, so the cross-model claims (T7:
Qwen2-Audio against an Ultravox-LLaMA model) run end to end on real model classes without the hub.

Load it with ``-p tests.nightly_tiny_lalms`` (``scripts/nightly.sh cross-model`` does in a dry run). The models are
SYNTHETIC: tiny random-weight Qwen2-Audio and Ultravox builds (``tests/tiny_lalms.py``: byte-level tokenizers, 2
decoder layers, d=64) behind the real catalog adapters, renamed so their records never pass for a real
checkpoint's. Their revision is the sha256 of their weights, so cached latents follow the weights. Names start with
the families the T7 spec pairs (``qwen2-audio``, ``ultravox-0.5-llama``).
"""

from __future__ import annotations

import dataclasses
import hashlib

import torch

from benchmark.models.base import ModelAdapter
from benchmark.models.catalog import MODELS

TINY_QWEN = "qwen2-audio-tiny-synthetic"
TINY_ULTRAVOX = "ultravox-0.5-llama-tiny-synthetic"
TINY_MODELS: tuple[str, ...] = (TINY_QWEN, TINY_ULTRAVOX)
CPU = torch.device("cpu")


def _weights_sha256(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(
            name.encode() + b"\0" + tensor.detach().to(torch.float32).contiguous().numpy().tobytes()
        )
    return digest.hexdigest()


def _renamed(adapter: ModelAdapter, name: str, model: torch.nn.Module, what: str) -> ModelAdapter:
    adapter.spec = dataclasses.replace(  # type: ignore[misc]
        adapter.spec,
        name=name,
        hub_id=None,
        revision=_weights_sha256(model),
        weights_source="SYNTHETIC: random weights built by tests/tiny_lalms.py (no checkpoint)",
        description=f"SYNTHETIC tiny {what} for the nightly's CPU dry run (2 decoder layers, d=64)",
    )
    return adapter


def build_tiny(name: str) -> ModelAdapter:
    """Catalog factory of the two tiny models (attached on the CPU in float32)."""
    from benchmark.models.hub_factory import build_adapter
    from tests.tiny_lalms import tiny_qwen2_audio, tiny_ultravox

    if name == TINY_QWEN:
        model, processor = tiny_qwen2_audio()
        adapter = build_adapter("qwen2-audio-7b-instruct")
        adapter.attach(model, processor, device=CPU, dtype=torch.float32)  # type: ignore[attr-defined]
        return _renamed(adapter, name, model, "Qwen2-Audio")
    if name == TINY_ULTRAVOX:
        model, tok, fe = tiny_ultravox()
        adapter = build_adapter("ultravox-0.5-llama-3.2-1b")
        adapter.attach(model, tok, fe, stack_factor=2, device=CPU, dtype=torch.float32)  # type: ignore[attr-defined]
        return _renamed(adapter, name, model, "Ultravox (Whisper encoder + Llama)")
    raise ValueError(f"no tiny dry-run model named {name!r}; known: {TINY_MODELS}")


def register() -> None:
    """Register the tiny models in the catalog (once per process)."""
    for name in TINY_MODELS:
        if name not in MODELS:
            MODELS.register(name, build_tiny)


register()
