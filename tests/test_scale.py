"""Sharded extraction on CPU with two processes, the memory estimate, and its too-big error.

The model is a tiny random Llama (SYNTHETIC, seeded so every process builds identical weights) behind a minimal
adapter, so two spawned processes finish in seconds; the engine code paths (hooks, batching, content-keyed
cache) are the real ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from benchmark.core.errors import OutOfMemoryError
from benchmark.core.schema import ProbeSet, Sample
from benchmark.engine.cache import LatentCache
from benchmark.engine.extract import extract_latents
from benchmark.engine.memory import check_fits, choose_batch_size, count_parameters, estimate_memory
from benchmark.engine.scale import extract_sharded, full_size_config, shard
from benchmark.models.base import (
    Availability,
    Batch,
    LayerHandles,
    ModelAdapter,
    ModelSpec,
    PreparedInput,
    Template,
)

VOCAB = 300


class TinyTextAdapter(ModelAdapter):
    """A 2-layer random Llama over byte ids. SYNTHETIC weights (seed 0)."""

    prepares_without_weights = True

    def __init__(self) -> None:
        super().__init__()
        self.spec = ModelSpec(
            name="tiny-llama-test",
            kind="text-lm",
            family="llama",
            hub_id=None,
            revision="seed0",
            modalities=("text",),
            languages=None,
            weights_source="random",
            description="test only",
        )
        self.templates = {"shared-suffix": {"text": Template("shared-suffix", "text", "", ":", "{text}:")}}
        self.model: Any = None

    def availability(self) -> Availability:
        return Availability(True, "random weights")

    @property
    def num_blocks(self) -> int:
        return 2

    def load(self, device: torch.device, dtype: torch.dtype) -> None:
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
        )
        self.model = LlamaForCausalLM(config).to(device=device, dtype=dtype).eval()
        self.device, self.dtype = torch.device(device), dtype

    def layer_handles(self) -> LayerHandles:
        return LayerHandles(blocks=list(self.model.model.layers), final_norm=self.model.model.norm)

    def prepare(self, sample: Sample, waveform: np.ndarray | None, template: str) -> PreparedInput:
        ids = [1, *(b + 3 for b in (sample.text + ":").encode())]
        return PreparedInput(
            sample.id,
            "text",
            len(ids),
            ids[-1],
            {"input_ids": ids},
            {"ids": ",".join(map(str, ids)), "template": template},
        )

    def collate(self, items: list[PreparedInput]) -> Batch:
        width = max(item.length for item in items)
        ids = torch.zeros((len(items), width), dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, item in enumerate(items):
            ids[row, : item.length] = torch.tensor(item.tensors["input_ids"])
            mask[row, : item.length] = 1
        return Batch(
            {"input_ids": ids, "attention_mask": mask}, mask.sum(dim=1) - 1, [i.sample_id for i in items]
        )

    def forward(self, batch: Batch) -> None:
        self.model.model(**batch.model_kwargs, use_cache=False)


def tiny_probe_set(n: int = 24) -> ProbeSet:
    words = ["cat", "sea", "a long sentence here", "hi", "the quick brown fox", "rain", "x", "more words now"]
    samples = [
        Sample(id=f"s{i:03d}", modality="text", text=f"{words[i % 8]} {i}", language="en") for i in range(n)
    ]
    return ProbeSet(name="tiny-scale", samples=samples)


def _cache_entries(root: Path) -> dict[str, np.ndarray]:
    out = {}
    for path in sorted(root.rglob("*.npz")):
        with np.load(path) as entry:
            out[str(path.relative_to(root))] = entry["latents"]
    return out


def _worker(rank: int, count: int, cache_dir: str) -> None:
    torch.set_num_threads(1)
    extract_sharded(
        TinyTextAdapter(),
        tiny_probe_set(),
        cache=LatentCache(cache_dir),
        index=rank,
        count=count,
        gather=False,
        batch_size=4,
        device="cpu",
        dtype="float32",
    )


def test_shards_partition_the_probe_set_deterministically() -> None:
    probes = tiny_probe_set(50)
    parts = [shard(probes, i, 3) for i in range(3)]
    ids = [s.id for part in parts for s in part.samples]
    assert sorted(ids) == sorted(s.id for s in probes.samples)
    assert len(set(ids)) == len(ids)
    assert all(len(part.samples) > 0 for part in parts)
    assert [s.id for s in shard(probes, 1, 3).samples] == [s.id for s in parts[1].samples]
    order = [s.id for s in probes.samples]
    assert all(
        order.index(a.id) < order.index(b.id)
        for a, b in zip(parts[0].samples, parts[0].samples[1:], strict=False)
    )
    with pytest.raises(ValueError, match="0 <= index < count"):
        shard(probes, 3, 3)


def test_two_process_sharding_produces_the_one_process_cache(tmp_path: Path) -> None:
    single, shared = tmp_path / "one", tmp_path / "two"
    probes = tiny_probe_set()
    extract_latents(
        TinyTextAdapter(), probes, cache=LatentCache(single), batch_size=4, device="cpu", dtype="float32"
    )
    mp.spawn(_worker, args=(2, str(shared)), nprocs=2, join=True)
    one, two = _cache_entries(single), _cache_entries(shared)
    assert len(one) == len(probes.samples)
    assert sorted(one) == sorted(two)  # same content keys, hence the same file names
    for name in one:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-5, atol=1e-6)
    latents, stats = extract_sharded(
        TinyTextAdapter(),
        probes,
        cache=LatentCache(shared),
        index=0,
        count=1,
        batch_size=4,
        device="cpu",
        dtype="float32",
    )
    assert stats.forward_passes == 0 and stats.cache_hits == len(probes.samples)
    assert latents is not None and latents.sample_ids == [s.id for s in probes.samples]


def test_memory_estimate_counts_weights_exactly_and_grows_with_batch() -> None:
    adapter = TinyTextAdapter()
    adapter.load(torch.device("cpu"), torch.float32)
    params = sum(p.numel() for p in adapter.model.parameters())
    small = estimate_memory(adapter.model, batch_size=1, seq_len=16)
    large = estimate_memory(adapter.model, batch_size=8, seq_len=16)
    assert small.weights_bytes == params * 4 == large.weights_bytes
    assert 0 < small.activation_bytes < large.activation_bytes
    assert count_parameters(adapter.model.config) == params  # built on the meta device, no allocation
    halved = estimate_memory(adapter.model, batch_size=1, seq_len=16, dtype=torch.bfloat16)
    assert halved.weights_bytes == params * 2


def test_full_size_estimate_is_plausible_and_too_big_error_is_clear() -> None:
    config = full_size_config("meta-llama/Llama-3.1-8B")
    estimate = estimate_memory(config, batch_size=8, seq_len=256, dtype=torch.bfloat16)
    assert 7.9e9 * 2 < estimate.weights_bytes < 8.1e9 * 2  # 8.03 B parameters in bf16
    assert estimate.activation_bytes < estimate.weights_bytes
    with pytest.raises(OutOfMemoryError) as caught:
        check_fits(estimate, 8 * 1024**3, device="cuda:0")
    message = str(caught.value)
    assert "GiB" in message and "weights" in message and "device_map" in message and "short by" in message
    fits = choose_batch_size(
        lambda b: estimate_memory(
            config, batch_size=b, seq_len=256, dtype=torch.bfloat16, parameters=8_030_261_248
        ),
        80 * 1024**3,
    )
    assert fits >= 1 and fits & (fits - 1) == 0


def test_warm_cache_never_loads_weights(tmp_path: Path) -> None:
    """A fully cached probe set needs no weights: the adapter is not loaded at all."""
    probes = tiny_probe_set(8)
    cache = LatentCache(tmp_path)
    first, _ = extract_latents(
        TinyTextAdapter(), probes, cache=cache, batch_size=4, device="cpu", dtype="float32"
    )
    fresh = TinyTextAdapter()
    again, stats = extract_latents(fresh, probes, cache=cache, batch_size=4, device="cpu", dtype="float32")
    assert fresh.model is None and stats.forward_passes == 0 and stats.cache_hits == 8
    np.testing.assert_array_equal(first.latents, again.latents)


def test_memory_plan_is_made_before_the_first_batch_and_refuses_what_cannot_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plan is in the stats; too little free memory fails before any forward pass, naming the numbers."""
    import benchmark.engine.memory as memory

    probes = tiny_probe_set(8)
    _, stats = extract_latents(TinyTextAdapter(), probes, device="cpu", dtype="float32")
    assert "memory estimate" in stats.memory_plan and "batch size 8 (the CPU default)" in stats.memory_plan
    assert stats.batches == 1
    monkeypatch.setattr(memory, "free_memory", lambda _device: 1024)
    adapter = TinyTextAdapter()
    with pytest.raises(OutOfMemoryError, match="does not fit cpu"):
        extract_latents(adapter, probes, device="cpu", dtype="float32")


def test_batch_size_is_chosen_from_free_memory_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU the largest power of two whose activations fit is taken; more memory, larger batches."""
    import benchmark.engine.memory as memory

    adapter = TinyTextAdapter()
    adapter.load(torch.device("cpu"), torch.float32)
    sizes = []
    for free in (2 * 1024**2, 64 * 1024**2, 64 * 1024**3):
        monkeypatch.setattr(memory, "free_memory", lambda _device, free=free: free)
        plan = memory.plan_batches(
            adapter.model, 64, batch_size=None, device=torch.device("cuda"), dtype=torch.bfloat16
        )
        assert plan.chosen and plan.estimate.batch_size == plan.batch_size
        sizes.append(plan.batch_size)
    assert sizes == sorted(sizes) and sizes[-1] == 64 and sizes[0] < 64


@pytest.mark.parametrize("build", ["tiny_qwen2_audio", "tiny_ultravox"])
def test_lalm_estimate_counts_the_audio_encoder(build: str) -> None:
    """Every clip runs the encoder over its padded frames: for an LALM that bounds the activations, not the
    decoder on a short prompt (an H200 run measured 1.98 GiB above the weights where the decoder gave 1.17)."""
    import tests.tiny_lalms as tiny
    from benchmark.engine import memory

    model = getattr(tiny, build)()[0]
    shape = memory.audio_encoder_shape(model)
    assert shape is not None and shape.frames > 1 and shape.width > 0
    config = memory.decoder_config(model)
    decoder_only = estimate_memory(config, batch_size=4, seq_len=8, encoder=None, parameters=1)
    with_encoder = estimate_memory(model, batch_size=4, seq_len=8)
    assert with_encoder.activation_bytes > decoder_only.activation_bytes
    text_model = TinyTextAdapter()
    text_model.load(torch.device("cpu"), torch.float32)
    assert memory.audio_encoder_shape(text_model.model) is None
