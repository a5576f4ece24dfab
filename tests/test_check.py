"""``lalm-bench check`` on the tiny random Qwen2-Audio (SYNTHETIC tokenizer and processor, tone clips).

The real checkpoints are checked by running ``lalm-bench check`` itself (the nightly, and by hand on
gemma-3-270m-q4km and whisper-base-ct2); these tests show each item can pass and that broken extraction is
caught: a final-norm hook on the wrong module fails (a), a model that ignores the audio fails (c), and a
failed check is an error (exit status 1, ``raise_for_failures``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.core.audio import write_float_wav as write_wav
from benchmark.core.errors import PipelineError
from benchmark.core.hashing import sha256_waveform as waveform_sha256
from benchmark.core.schema import ProbeSet, Sample
from benchmark.engine.check import CheckReport, format_report, main_check, report_json, run_check
from benchmark.models.base import LayerHandles, PreparedInput
from benchmark.models.hf_lalm import HubLALMAdapter
from benchmark.models.hf_recipes import RECIPES
from benchmark.models.ultravox import VARIANTS, UltravoxAdapter
from tests.tiny_lalms import clip, tiny_qwen2_audio, tiny_ultravox


class TinyQwen(HubLALMAdapter):
    """The Qwen2-Audio adapter whose ``load`` rebuilds the tiny seeded model in the requested dtype."""

    def __init__(self) -> None:
        super().__init__(RECIPES["qwen2-audio-7b-instruct"])

    def load(self, device: torch.device, dtype: torch.dtype) -> None:
        model, processor = tiny_qwen2_audio()
        self.attach(model.to(device=device, dtype=dtype), processor, device=device, dtype=dtype)


class WrongNorm(TinyQwen):
    """Hooks the last block as the final norm: ``final_norm`` would silently be the raw residual stream."""

    def layer_handles(self) -> LayerHandles:
        handles = super().layer_handles()
        return LayerHandles(blocks=handles.blocks, final_norm=handles.blocks[-1])


class Deaf(TinyQwen):
    """Feeds one fixed clip whatever the sample's audio (lmms-eval PR #1081): keys differ, latents cannot."""

    def prepare(self, sample: Sample, waveform: np.ndarray | None, template: str) -> PreparedInput:
        item = super().prepare(sample, None if waveform is None else clip(0), template)
        if waveform is not None:
            item.key_material["waveform"] = waveform_sha256(waveform)
        return item


@pytest.fixture(scope="module")
def probe_set(tmp_path_factory: pytest.TempPathFactory) -> ProbeSet:
    folder = tmp_path_factory.mktemp("check")
    texts = ["Hi.", "The cat sat on the mat.", "Rain again tomorrow, they say.", "Bonjour tout le monde."]
    samples = [Sample(id=f"t{i}", modality="text", text=t, language="en") for i, t in enumerate(texts)]
    for i in range(4):
        path = write_wav(Path(folder) / f"tone{i}.wav", clip(200 + i, seconds=0.3 + 0.15 * i), 16_000)
        samples.append(
            Sample(
                id=f"s{i}",
                modality="speech",
                text="tone",
                audio_path=str(path),
                language="en",
                synthetic=True,
            )
        )
    return ProbeSet(name="check-test", samples=samples)


def _check(adapter: HubLALMAdapter, probe_set: ProbeSet, dtype: str = "float32") -> CheckReport:
    return run_check(adapter, device="cpu", dtype=dtype, probe_set=probe_set, batch_size=8)


@pytest.fixture(scope="module")
def report(probe_set: ProbeSet) -> CheckReport:
    return _check(TinyQwen(), probe_set)


def test_every_item_passes_on_a_sound_adapter(report: CheckReport) -> None:
    statuses = {item.key: item.status for item in report.items}
    assert statuses == {
        **dict.fromkeys(
            (
                "hidden_states",
                "audio_placeholders",
                "distinct_inputs",
                "batch_invariance",
                "dtype_drift",
                "template",
            ),
            "pass",
        ),
        "generation": "warn",  # a random model does not transcribe: warned, not failed
        "parity": "not applicable",
    }, {item.key: item.detail for item in report.items}
    assert report.ok and report.samples == {"text": 4, "speech": 4}
    report.raise_for_failures()


def test_item_numbers(report: CheckReport) -> None:
    per_clip = report.item("audio_placeholders").numbers["per_clip"]
    assert len(per_clip) == 4 and all(
        c["placeholders"] == c["audio_embeddings"] > 1 for c in per_clip.values()
    )
    assert len({c["placeholders"] for c in per_clip.values()}) > 1  # clip lengths differ, so do the counts
    assert max(report.item("batch_invariance").numbers["max_relative_diff"].values()) <= 1e-4
    assert len(report.item("batch_invariance").numbers["lengths"]) > 1
    drift = report.item("dtype_drift").numbers["median_relative_l2"]
    assert 0 < drift["final_norm"] < 0.2  # bf16 differs from fp32, but not wildly
    tails = report.item("template").numbers["last_tokens"]
    assert tails["text"]["last_token_id"] == tails["speech"]["last_token_id"]  # shared suffix


def test_format_and_json(report: CheckReport) -> None:
    text = format_report(report)
    assert "[OK]" in text and "(a) PASS" in text and "(f) PASS" in text
    assert "<|im_start|>assistant" in text  # the template and the decoded last tokens are printed
    data = json.loads(report_json(report))
    assert data["ok"] is True and data["schema"] == "lalm-bench-check/1"
    assert data["items"][0]["key"] == "hidden_states"


def test_bf16_run_uses_tolerance_from_drift(probe_set: ProbeSet) -> None:
    report = _check(TinyQwen(), probe_set, dtype="bfloat16")
    assert report.dtype == "bfloat16"
    tolerance = report.tolerances["run"]
    drift = report.item("dtype_drift").numbers["max_relative_diff"]
    assert all(tolerance[name] == max(1e-4, drift[name]) for name in drift)
    assert report.item("batch_invariance").status == "pass", report.item("batch_invariance").detail


def test_wrong_final_norm_fails_hidden_states(
    probe_set: ProbeSet, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    adapter = WrongNorm()
    monkeypatch.setattr("benchmark.models.catalog.get_adapter", lambda name: adapter)
    monkeypatch.setattr("benchmark.engine.check.default_check_set", lambda _adapter: probe_set)
    args = argparse.Namespace(
        model="qwen2-audio-7b-instruct", device="cpu", dtype="float32", batch_size=8, json=True
    )
    assert main_check(args) == 1
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["ok"] is False
    items = {item["key"]: item for item in data["items"]}
    assert items["hidden_states"]["status"] == "fail"
    assert "hidden_states" in captured.err


def test_ignored_audio_fails_distinct_inputs(probe_set: ProbeSet) -> None:
    report = _check(Deaf(), probe_set)
    assert report.item("distinct_inputs").status == "fail"
    assert "s0" in report.item("distinct_inputs").detail
    with pytest.raises(PipelineError, match="distinct_inputs"):
        report.raise_for_failures()


def test_batch_size_must_allow_a_comparison(probe_set: ProbeSet) -> None:
    with pytest.raises(ValueError, match="at least 2"):
        run_check(TinyQwen(), device="cpu", dtype="float32", probe_set=probe_set, batch_size=1)


# ---- (g) generation and (h) Ultravox parity ---------------------------------------------------------------------
def test_generation_warns_with_the_wer_of_a_random_model(report: CheckReport) -> None:
    item = report.item("generation")
    assert item.status == "warn" and item.numbers["wer"] > 0.5 and item.numbers["reference"] == "tone"
    assert "WER" in item.detail and "(g) WARN" in format_report(report)
    assert report.ok  # a warning is not a failed pre-flight


class Transcribes(TinyQwen):
    """Returns the clip's own transcript: the generation item must pass."""

    def transcribe(self, waveform: np.ndarray, language: str = "en", max_new_tokens: int = 64) -> str:
        assert waveform.ndim == 1 and language == "en"
        return "Tone."


def test_generation_passes_on_a_correct_transcript(probe_set: ProbeSet) -> None:
    report = run_check(Transcribes(), device="cpu", dtype="float32", probe_set=probe_set, batch_size=8)
    assert report.item("generation").status == "pass" and report.item("generation").numbers["wer"] == 0.0


class TinyUltravox(UltravoxAdapter):
    def __init__(self) -> None:
        super().__init__("ultravox-0.5-llama-3.2-1b", VARIANTS["ultravox-0.5-llama-3.2-1b"])

    def load(self, device: torch.device, dtype: torch.dtype) -> None:
        model, tok, fe = tiny_ultravox()
        self.attach(model.to(device=device, dtype=dtype), tok, fe, stack_factor=2, device=device, dtype=dtype)


def test_ultravox_parity_is_skipped_saying_how(probe_set: ProbeSet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LALM_BENCH_ULTRAVOX_PYTHON", raising=False)
    report = run_check(TinyUltravox(), device="cpu", dtype="float32", probe_set=probe_set, batch_size=8)
    item = report.item("parity")
    assert item.status == "skipped" and "LALM_BENCH_ULTRAVOX_PYTHON" in item.detail
    assert report.item("audio_placeholders").status == "pass", report.item("audio_placeholders").detail


def test_ultravox_parity_runs_the_reference_and_compares(
    probe_set: ProbeSet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The plumbing of (h): the reference program gets hub id, revision, content, audio, date and output path and
    writes the npz that ``parity_check`` compares. Here the "official" output is this implementation's own, so it
    passes; a perturbed one fails the pre-flight."""
    from benchmark.models.hf_common import INSTRUCTION
    from benchmark.models.ultravox import PLACEHOLDER
    from benchmark.probes.io import read_waveform

    adapter = TinyUltravox()
    adapter.load(torch.device("cpu"), torch.float32)
    sample = next(s for s in probe_set.samples if s.modality == "speech")
    wave, _ = read_waveform(probe_set.audio_file(sample))
    item = adapter.prepare(sample, wave, "shared-suffix")
    states = adapter.hidden_states(adapter.collate([item]))
    for scale, expected in ((1.0, "pass"), (1.5, "fail")):
        arrays = {f"h{i}": h[0].float().numpy() * (scale if i == 1 else 1.0) for i, h in enumerate(states)}
        npz = tmp_path / f"ref{scale}.npz"
        np.savez(npz, input_ids=item.tensors["input_ids"].numpy()[None], **arrays)
        fake = tmp_path / f"python{scale}"
        fake.write_text(f'#!/bin/sh\n[ "$4" = "{PLACEHOLDER}{INSTRUCTION}" ] || exit 3\ncp "{npz}" "$7"\n')
        fake.chmod(0o755)
        monkeypatch.setenv("LALM_BENCH_ULTRAVOX_PYTHON", str(fake))
        report = run_check(TinyUltravox(), device="cpu", dtype="float32", probe_set=probe_set, batch_size=8)
        assert report.item("parity").status == expected, report.item("parity").detail
