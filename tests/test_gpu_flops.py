"""The FLOP count behind the GPU benchmark's utilisation figure, checked on CPU against torch's own counter.

``benchmarks/gpu_full_size.py`` reports achieved FLOP/s as a share of the card's bf16 matmul rate; its useful
FLOPs are counted analytically from the model's parts. An earlier version looked for the audio encoder on the
model's top level, where transformers 5 no longer puts Qwen2-Audio's, so the encoder's FLOPs (most of a clip's)
were silently left out. Here the analytic count of the audio path (encoder linear layers and attention, and the
projector) must equal what ``torch.utils.flop_counter`` counts for a real forward of the same tiny-shaped parts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

#: Ops that are matrix products (the count leaves out the encoder's convolution stem on purpose).
_MATMUL_OPS = ("aten.mm", "aten.addmm", "aten.bmm")


@pytest.fixture(scope="module")
def gpu_bench():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import gpu_full_size

        yield gpu_full_size
    finally:
        sys.path.remove(str(BENCHMARKS))
        sys.modules.pop("gpu_full_size", None)


@pytest.mark.parametrize("name", ["qwen2-audio-7b", "ultravox-0.5-llama-3.1-8b"])
def test_audio_flops_match_torch_counter(gpu_bench, name: str) -> None:
    adapter, model, attach = gpu_bench.BUILDERS[name]("tiny", torch.device("cpu"))
    model = model.float()  # the builders make bf16 weights; the counter runs the parts on CPU in float32
    attach(model, torch.float32)
    encoder = gpu_bench._part(model, "audio_tower")
    projector = gpu_bench._part(model, "multi_modal_projector")
    assert encoder is not None and projector is not None, f"{name}: audio tower or projector not found"
    encoder.set_attn_implementation("eager")  # eager attention is made of bmm, which the counter sees
    features = torch.randn(1, int(encoder.config.num_mel_bins), 2 * gpu_bench.ENCODER_FRAMES)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        encoded = encoder(features)
        projector(encoded[0] if isinstance(encoded, tuple) else encoded.last_hidden_state)
    counts = {str(op): flops for op, flops in counter.get_flop_counts()["Global"].items()}
    measured = sum(counts.get(op, 0) for op in _MATMUL_OPS)
    counted = gpu_bench.useful_flops(model, adapter, 0, [gpu_bench.ENCODER_FRAMES])
    assert counted == pytest.approx(measured, rel=1e-9), (
        f"{name}: analytic {counted:.4g} vs torch {measured:.4g}"
    )


def test_decoder_tokens_add_two_flops_per_linear_parameter(gpu_bench) -> None:
    adapter, model, attach = gpu_bench.BUILDERS["qwen2-audio-7b"]("tiny", torch.device("cpu"))
    attach(model, torch.float32)
    blocks = adapter.layer_handles().blocks
    linear = sum(m.weight.numel() for b in blocks for m in b.modules() if isinstance(m, torch.nn.Linear))
    with_tokens = gpu_bench.useful_flops(model, adapter, 10, [])
    assert with_tokens == 2.0 * linear * 10


def test_encoder_calls_follow_each_adapter(gpu_bench) -> None:
    """Qwen2-Audio pads every clip to the 30-s window; Ultravox encodes each chunk's own frames."""
    from benchmark.probes.catalog import resolve_probes

    probes = gpu_bench.choose_inputs(resolve_probes("crossmodal", "ci"), 0, 2)
    calls = {}
    for name in gpu_bench.BUILDERS:
        adapter, model, attach = gpu_bench.BUILDERS[name]("tiny", torch.device("meta"))
        attach(model, torch.bfloat16)
        prepared, _ = gpu_bench.prepare_samples(adapter, probes, list(probes.samples), "shared-suffix")
        calls[name] = gpu_bench.encoder_frames(prepared)
    assert calls["qwen2-audio-7b"] == [gpu_bench.ENCODER_FRAMES] * 2
    ultravox = calls["ultravox-0.5-llama-3.1-8b"]
    assert len(ultravox) == 2 and all(0 < t < gpu_bench.ENCODER_FRAMES for t in ultravox), ultravox


def test_gpu_script_runs_both_models_at_tiny_scale(tmp_path: Path) -> None:
    """The whole GPU path (build, attach, engine and naive rounds, figures) on CPU with tiny shapes: a lent GPU
    is scarce, and the Ultravox build once failed at attach (its synthetic tokenizer had no chat template)."""
    import json
    import subprocess

    argv = [sys.executable, str(BENCHMARKS / "gpu_full_size.py"), "--scale", "tiny", "--device", "cpu"]
    argv += [
        "--probes",
        "crossmodal",
        "--texts",
        "2",
        "--clips",
        "1",
        "--rounds",
        "1",
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads((tmp_path / "gpu_full_size.json").read_text(encoding="utf-8"))
    by_model = {entry["model"]: entry for entry in figures["models"]}
    assert set(by_model) == {"qwen2-audio-7b", "ultravox-0.5-llama-3.1-8b"}
    for name, entry in by_model.items():
        assert entry.get("error") is None, f"{name}: {entry.get('error')}"
        assert entry["useful_tflop"] > 0 and entry["engine_seconds"] > 0, name
