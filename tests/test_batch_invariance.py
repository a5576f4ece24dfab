"""Batch size and padding side never change a latent or a control (DESIGN.md: "Latents of a sample must not
depend on batch size or on its neighbours").

Both offline models with real weights (gemma-3-270m-q4km on texts; whisper-base-ct2 on texts and speech-grid
clips), both templates from one run each: batch 8 right-padded is the reference, batch 1 and batch 8
left-padded must match it within fp32 noise (max |diff| <= 1e-4 of the latent's norm, per sample and layer).
The SYNTHETIC tiny audio LM (``tests/tiny_engine.py``) runs the same comparison in a second.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.core.schema import ProbeSet, Sample
from benchmark.engine.extract import LatentSet, extract_templates
from benchmark.models import offline_assets
from benchmark.models.base import ModelAdapter

TOLERANCE = 1e-4
BOTH = ("bare", "shared-suffix")
RUN = {"device": "cpu", "dtype": "float32", "cache": None}


def _spread(samples: list[Sample], n: int) -> list[Sample]:
    step = max(1, len(samples) // n)
    return samples[::step][:n]


def _probe_set(name: str) -> ProbeSet:
    from benchmark.probes.catalog import resolve_probes

    if name == "tiny-audio-lm":
        from tests.tiny_engine import tiny_probe_set

        return tiny_probe_set(Path(tempfile.mkdtemp(prefix="batch-invariance-")))
    texts = _spread(resolve_probes("text-parallel", "ci").samples, 9 if name.startswith("gemma") else 5)
    if name.startswith("gemma"):
        return ProbeSet(name="batch-invariance", samples=texts)
    grid = resolve_probes("speech-grid", "ci")
    clips = [s.model_copy(update={"audio_path": str(grid.audio_file(s))}) for s in _spread(grid.samples, 4)]
    return ProbeSet(name="batch-invariance", samples=[*texts, *clips])


@pytest.fixture(scope="module", params=["tiny-audio-lm", "gemma-3-270m-q4km", "whisper-base-ct2"])
def model(request: pytest.FixtureRequest) -> Iterator[tuple[ModelAdapter, ProbeSet]]:
    if request.param == "tiny-audio-lm":
        from tests.tiny_engine import TinyAudioLM

        adapter: ModelAdapter = TinyAudioLM()
    else:
        status = offline_assets.availability(request.param)
        if not status.available:
            pytest.skip(status.detail)
        from benchmark.models.offline import build_adapter

        adapter = build_adapter(request.param)
    adapter.load(torch.device("cpu"), torch.float32)
    yield adapter, _probe_set(request.param)
    adapter.unload()


def _worst(a: LatentSet, b: LatentSet) -> tuple[float, float]:
    """Largest ``max |a - b| / ||b||`` over samples and layers, for the latents and the (available) controls."""

    def relative(x: np.ndarray, y: np.ndarray) -> float:
        x, y = x.astype(np.float64), y.astype(np.float64)
        keep = ~np.isnan(y).all(axis=-1)
        assert np.array_equal(keep, ~np.isnan(x).all(axis=-1))
        return float((np.abs(x - y).max(-1)[keep] / np.linalg.norm(y, axis=-1)[keep]).max(initial=0.0))

    assert a.sample_ids == b.sample_ids
    return relative(a.latents, b.latents), relative(a.controls, b.controls)


def _run(adapter: ModelAdapter, probes: ProbeSet, batch_size: int, side: str) -> dict[str, LatentSet]:
    previous = adapter.padding_side  # type: ignore[attr-defined]
    adapter.padding_side = side  # type: ignore[attr-defined]
    try:
        sets, stats = extract_templates(adapter, probes, BOTH, batch_size=batch_size, **RUN)
    finally:
        adapter.padding_side = previous  # type: ignore[attr-defined]
    assert stats.forward_passes == len(BOTH) * -(-len(probes.samples) // batch_size)
    return sets


@pytest.fixture(scope="module")
def reference(model: tuple[ModelAdapter, ProbeSet]) -> dict[str, LatentSet]:
    adapter, probes = model
    sets = _run(adapter, probes, 8, "right")
    for latent_set in sets.values():
        assert len(set(latent_set.manifest.positions)) > 2, (
            "inputs must differ in length for padding to matter"
        )
    return sets


@pytest.mark.slow
@pytest.mark.parametrize(("batch_size", "side"), [(1, "right"), (8, "left")])
def test_batch_size_and_padding_side_change_no_latent(
    model: tuple[ModelAdapter, ProbeSet], reference: dict[str, LatentSet], batch_size: int, side: str
) -> None:
    adapter, probes = model
    other = _run(adapter, probes, batch_size, side)
    for name in BOTH:
        latents, controls = _worst(other[name], reference[name])
        assert latents <= TOLERANCE, f"{name}: latents differ by {latents:.2e} of the norm"
        assert controls <= TOLERANCE, f"{name}: controls differ by {controls:.2e} of the norm"
        np.testing.assert_array_equal(other[name].control_available, reference[name].control_available)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["whisper-base-ct2"], indirect=True)  # absolute positions: a shift shows
def test_left_padding_without_positions_would_be_caught(
    model: tuple[ModelAdapter, ProbeSet], reference: dict[str, LatentSet], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comparison can fail: left padding whose positions count the pads (every row shifted) moves
    whisper's latents (learned absolute positions) beyond the tolerance."""
    adapter, probes = model
    from benchmark.models import padding

    real = padding.pad_rows

    def shifted(*args: object, **kwargs: object) -> padding.PaddedRows:
        rows = real(*args, **kwargs)  # type: ignore[arg-type]
        width = rows.position_ids.shape[1]
        rows.position_ids = torch.arange(width).expand_as(rows.position_ids).clone()
        return rows

    monkeypatch.setattr("benchmark.models.whisper_ct2.pad_rows", shifted)
    other = _run(adapter, probes, 8, "left")
    assert max(_worst(other[name], reference[name])[0] for name in BOTH) > TOLERANCE
