"""Hostile inputs through the command line: every case is a clear error naming its culprit, never a traceback.

Each case builds its input in a temporary folder, runs ``lalm-bench`` in-process, and asserts the exit code
(``benchmark.run.exit_codes``: 2 for bad input or usage) and that stderr names the culprit (the file and row,
the option, the model). Validation runs before any model loads, so these cases load no weights, except the
cache case, which must compute to have an entry to corrupt.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli.main import main
from benchmark.probes.io import MAX_TEXT_CHARS
from tests.probe_factory import (
    parallel_text_set,
    speech_row,
    speech_set,
    text_row,
    tone,
    write_clip,
    write_manifest,
)

WHISPER = "whisper-base-ct2"


@dataclass(frozen=True)
class Case:
    """``build(tmp)`` writes the input and returns the command line; the run must exit ``code`` and its
    stderr must contain every string of ``names``."""

    build: Callable[[Path], list[str]]
    names: tuple[str, ...]
    code: int = 2


def _extract(folder: Path, *extra: str, model: str = WHISPER) -> list[str]:
    return ["extract", "--model", model, "--probes", str(folder), "--profile", "custom", *extra]


def _text_set(tmp: Path, rows: list[dict]) -> list[str]:
    return _extract(write_manifest(tmp / "set", rows))


def _good_rows() -> list[dict]:
    return [text_row("a", "A good sentence"), text_row("b", "Another good sentence")]


# ------------------------------------------------------------------------------------------- manifests


def _no_manifest(tmp: Path) -> list[str]:
    (tmp / "set").mkdir()
    return _extract(tmp / "set")


def _two_manifests(tmp: Path) -> list[str]:
    write_manifest(tmp / "set", _good_rows())
    (tmp / "set" / "manifest.csv").write_text("id,modality,text,language\n", encoding="utf-8")
    return _extract(tmp / "set")


def _bad_json(tmp: Path) -> list[str]:
    write_manifest(tmp / "set", _good_rows())
    with open(tmp / "set" / "manifest.jsonl", "a", encoding="utf-8") as handle:
        handle.write('{"id": "c", "modality": "text",\n')
    return _extract(tmp / "set")


def _array_row(tmp: Path) -> list[str]:
    write_manifest(tmp / "set", _good_rows())
    with open(tmp / "set" / "manifest.jsonl", "a", encoding="utf-8") as handle:
        handle.write('["not", "an", "object"]\n')
    return _extract(tmp / "set")


def _csv_extra_cells(tmp: Path) -> list[str]:
    (tmp / "set").mkdir()
    (tmp / "set" / "manifest.csv").write_text(
        "id,modality,text,language\na,text,Hello there,en\nb,text,Hi,en,surplus\n", encoding="utf-8"
    )
    return _extract(tmp / "set")


def _csv_bad_bool(tmp: Path) -> list[str]:
    (tmp / "set").mkdir()
    (tmp / "set" / "manifest.csv").write_text(
        "id,modality,text,language,synthetic\na,text,Hello there,en,perhaps\n", encoding="utf-8"
    )
    return _extract(tmp / "set")


def _not_utf8(tmp: Path) -> list[str]:
    (tmp / "set").mkdir()
    (tmp / "set" / "manifest.jsonl").write_bytes(
        b'{"id": "a", "modality": "text", "text": "caf\xe9", "language": "fr"}\n'
    )
    return _extract(tmp / "set")


def _bad_header(tmp: Path) -> list[str]:
    write_manifest(tmp / "set", _good_rows())
    (tmp / "set" / "probeset.json").write_text("{not json", encoding="utf-8")
    return _extract(tmp / "set")


def _unknown_profile_name(tmp: Path) -> list[str]:
    write_manifest(tmp / "set", _good_rows(), header={"name": "mine", "profiles": {"nightly": ["a"]}})
    return _extract(tmp / "set")


def _profile_names_missing_id(tmp: Path) -> list[str]:
    write_manifest(
        tmp / "set", _good_rows(), header={"name": "mine", "profiles": {"ci": ["a", "zz-missing"]}}
    )
    return [*_extract(tmp / "set")[:-2], "--profile", "ci"]


def _profile_not_declared(tmp: Path) -> list[str]:
    write_manifest(tmp / "set", _good_rows(), header={"name": "mine", "profiles": {"full": ["a", "b"]}})
    return [*_extract(tmp / "set")[:-2], "--profile", "ci"]


def _row(field_values: dict) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        return _text_set(tmp, [*_good_rows(), {**text_row("bad", "Fine text"), **field_values}])

    return build


def _duplicate_id(tmp: Path) -> list[str]:
    return _text_set(tmp, [*_good_rows(), text_row("a", "Same id again")])


# -------------------------------------------------------------------------------------------- audio


def _audio_case(write: Callable[[Path], None], path: str = "audio/bad.wav") -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        folder = tmp / "set"
        write_clip(folder / "audio" / "good.wav", tone())
        write(folder / path)
        rows = [speech_row("good", "audio/good.wav"), speech_row("bad", path)]
        write_manifest(folder, rows)
        return _extract(folder)

    return build


def _truncated(path: Path) -> None:
    write_clip(path, tone(1.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _stereo(left: np.ndarray, right: np.ndarray) -> Callable[[Path], None]:
    return lambda path: write_clip(path, np.stack([left, right], axis=1))


def _with(value: float, index: int = 100) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        data = tone()
        data[index] = value
        write_clip(path, data, subtype="FLOAT")

    return write


def _symlink_file_outside(tmp: Path) -> list[str]:
    secret = write_clip(tmp / "elsewhere" / "secret.wav", tone())
    folder = tmp / "set"
    (folder / "audio").mkdir(parents=True)
    (folder / "audio" / "link.wav").symlink_to(secret)
    write_manifest(folder, [speech_row("s", "audio/link.wav")])
    return _extract(folder)


def _symlink_folder_outside(tmp: Path) -> list[str]:
    write_clip(tmp / "elsewhere" / "clip.wav", tone())
    folder = tmp / "set"
    folder.mkdir()
    (folder / "audio").symlink_to(tmp / "elsewhere", target_is_directory=True)
    write_manifest(folder, [speech_row("s", "audio/clip.wav")])
    return _extract(folder)


def _dotdot(tmp: Path) -> list[str]:
    write_clip(tmp / "outside.wav", tone())
    write_manifest(tmp / "set", [speech_row("s", "../outside.wav")])
    return _extract(tmp / "set")


def _hash_mismatch(tmp: Path) -> list[str]:
    folder = speech_set(tmp / "set", {"s": tone()})
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    rows[0]["audio_sha256"] = "0" * 64
    write_manifest(folder, rows)
    return _extract(folder)


def _too_long_for_whisper(tmp: Path) -> list[str]:
    return _extract(speech_set(tmp / "set", {"long": tone(31.0)}))


def _text_over_context(tmp: Path) -> list[str]:
    text = "的" * (MAX_TEXT_CHARS - 10)  # under the character limit, over Whisper's 448 decoder positions
    return _text_set(tmp, [*_good_rows(), text_row("long", text, "zh")])


# ------------------------------------------------------------------------------------------ options


def _ok_set(tmp: Path) -> Path:
    return parallel_text_set(tmp / "set", meanings=1, languages=("en", "fr"))


def _with_options(*options: str) -> Callable[[Path], list[str]]:
    return lambda tmp: _extract(_ok_set(tmp), *options)


def _cache_dir_is_file(tmp: Path) -> list[str]:
    (tmp / "a-file").write_text("x", encoding="utf-8")
    return _extract(_ok_set(tmp), "--cache-dir", str(tmp / "a-file"))


def _out_is_folder(tmp: Path) -> list[str]:
    (tmp / "folder").mkdir()
    return _extract(_ok_set(tmp), "--out", str(tmp / "folder"))


def _run_out_under_file(tmp: Path) -> list[str]:
    return ["run", "--probes", str(_ok_set(tmp)), "--profile", "custom", "--out", "/dev/null/reports"]


def _run_results_unwritable(tmp: Path) -> list[str]:
    return ["run", "--probes", str(_ok_set(tmp)), "--results", "/proc/lalm-bench-results"]


# ------------------------------------------------------------------------------------- report, latents


def _report_empty(tmp: Path) -> list[str]:
    (tmp / "results").mkdir()
    return ["report", str(tmp / "results"), "--out", str(tmp / "reports")]


def _report_garbage_record(tmp: Path) -> list[str]:
    (tmp / "results").mkdir()
    (tmp / "results" / "T1-x@1.json").write_text("{broken", encoding="utf-8")
    return ["report", str(tmp / "results"), "--out", str(tmp / "reports")]


def _report_missing_folder(tmp: Path) -> list[str]:
    return ["report", str(tmp / "no-such-results"), "--out", str(tmp / "reports")]


def _report_out_unwritable(tmp: Path) -> list[str]:
    (tmp / "results").mkdir()
    return ["report", str(tmp / "results"), "--out", "/proc/lalm-bench-report"]


def _import_garbage(tmp: Path) -> list[str]:
    (tmp / "x.safetensors").write_bytes(b"\x00\x01garbage")
    return ["import-latents", str(tmp / "x.safetensors"), "--results", str(tmp / "results")]


def _import_missing(tmp: Path) -> list[str]:
    return ["import-latents", str(tmp / "nothing.safetensors"), "--results", str(tmp / "results")]


CASES: dict[str, Case] = {
    # manifests (file:row: field: problem)
    "no-manifest": Case(_no_manifest, ("no manifest", "manifest.jsonl")),
    "two-manifests": Case(_two_manifests, ("more than one manifest",)),
    "invalid-json-row": Case(_bad_json, ("manifest.jsonl:3", "not valid JSON")),
    "array-row": Case(_array_row, ("manifest.jsonl:3", "expected a JSON object")),
    "csv-extra-cells": Case(_csv_extra_cells, ("manifest.csv:3", "more cell(s)")),
    "csv-bad-boolean": Case(_csv_bad_bool, ("manifest.csv:2", "field 'synthetic'", "perhaps")),
    "not-utf8": Case(_not_utf8, ("manifest.jsonl", "not UTF-8")),
    "header-not-json": Case(_bad_header, ("probeset.json", "not valid JSON")),
    "header-unknown-profile": Case(_unknown_profile_name, ("probeset.json", "nightly")),
    "profile-id-missing": Case(_profile_names_missing_id, ("profiles.ci", "zz-missing")),
    "profile-not-declared": Case(_profile_not_declared, ("unknown profile 'ci'",)),
    "unknown-field": Case(_row({"colour": "red"}), ("manifest.jsonl:3", "field 'colour'", "unknown field")),
    "missing-language": Case(
        lambda tmp: _text_set(tmp, [{"id": "x", "modality": "text", "text": "Hi"}]),
        ("manifest.jsonl:1", "field 'language'", "missing"),
    ),
    "unknown-language": Case(_row({"language": "xx"}), ("manifest.jsonl:3", "'xx'")),
    "bad-modality": Case(_row({"modality": "video"}), ("manifest.jsonl:3", "field 'modality'")),
    "duplicate-id": Case(_duplicate_id, ("manifest.jsonl:3", "duplicate id 'a'")),
    "empty-text": Case(_row({"text": "   "}), ("manifest.jsonl:3", "field 'text'", "empty")),
    "invisible-text": Case(
        _row({"text": "\u200b\u200b\u2060\ufeff"}),
        ("manifest.jsonl:3", "field 'text'", "no visible character"),
    ),
    "control-only-text": Case(_row({"text": "\x07\x08"}), ("manifest.jsonl:3", "control character U+0007")),
    "text-over-char-limit": Case(
        _row({"text": "word " * (MAX_TEXT_CHARS // 4)}), ("manifest.jsonl:3", "over the limit")
    ),
    "speech-without-audio": Case(_row({"modality": "speech"}), ("manifest.jsonl:3", "needs an audio_path")),
    "text-with-audio": Case(_row({"audio_path": "a.wav"}), ("manifest.jsonl:3", "must not carry")),
    "absolute-audio-path": Case(
        lambda tmp: _text_set(tmp, [speech_row("s", "/etc/hostname")]),
        ("manifest.jsonl:1", "field 'audio_path'", "relative"),
    ),
    "dotdot-audio-path": Case(_dotdot, ("manifest.jsonl:1", "field 'audio_path'", "leaves the probe-set")),
    "symlinked-file-outside": Case(
        _symlink_file_outside, ("manifest.jsonl:1", "outside the probe-set folder")
    ),
    "symlinked-folder-outside": Case(
        _symlink_folder_outside, ("manifest.jsonl:1", "outside the probe-set folder")
    ),
    "bad-sha256-format": Case(
        lambda tmp: _text_set(tmp, [speech_row("s", "a.wav", audio_sha256="xyz")]),
        ("field 'audio_sha256'", "64 lower-case hex"),
    ),
    # audio
    "audio-missing": Case(
        lambda tmp: _text_set(tmp, [speech_row("s", "audio/none.wav")]),
        ("manifest.jsonl:1", "does not exist"),
    ),
    "audio-sha-mismatch": Case(
        _hash_mismatch, ("manifest.jsonl:1", "field 'audio_sha256'", "the manifest says")
    ),
    "audio-empty-file": Case(
        _audio_case(lambda p: p.write_bytes(b"")), ("manifest.jsonl:2", "bad.wav", "empty (0 bytes)")
    ),
    "audio-not-audio": Case(
        _audio_case(lambda p: p.write_text("hello", encoding="utf-8")),
        ("bad.wav", "not a readable audio file"),
    ),
    "audio-truncated": Case(_audio_case(_truncated), ("manifest.jsonl:2", "bad.wav", "truncated")),
    "audio-silent": Case(
        _audio_case(lambda p: write_clip(p, np.zeros(8000, np.float32))), ("bad.wav", "silent")
    ),
    "audio-antiphase-stereo": Case(
        _audio_case(_stereo(tone(), -tone())), ("bad.wav", "silent after the downmix to mono", "antiphase")
    ),
    "audio-dc-only": Case(
        _audio_case(lambda p: write_clip(p, np.full(8000, 0.25, np.float32))), ("bad.wav", "DC-only")
    ),
    "audio-one-sample": Case(
        _audio_case(lambda p: write_clip(p, np.array([0.5], np.float32))), ("bad.wav", "1 sample(s)")
    ),
    "audio-absurd-rate-low": Case(
        _audio_case(lambda p: write_clip(p, tone(1.0, rate=100), rate=1)), ("bad.wav", "sampling rate 1 Hz")
    ),
    "audio-absurd-rate-high": Case(
        _audio_case(lambda p: write_clip(p, tone(0.1), rate=2_000_000)), ("bad.wav", "2000000 Hz")
    ),
    "audio-nan": Case(_audio_case(_with(float("nan"))), ("bad.wav", "NaN or infinite")),
    "audio-inf": Case(_audio_case(_with(float("inf"))), ("bad.wav", "NaN or infinite")),
    "clip-over-model-window": Case(
        _too_long_for_whisper, ("manifest.jsonl:1", "field 'audio_path'", WHISPER, "30 s")
    ),
    "text-over-model-context": Case(
        _text_over_context, ("manifest.jsonl:3", "field 'text'", WHISPER, "448 positions")
    ),
    # options (argparse's own usage errors are exit 2 as well)
    "batch-size-zero": Case(_with_options("--batch-size", "0"), ("--batch-size", "at least 1")),
    "batch-size-negative": Case(_with_options("--batch-size", "-3"), ("--batch-size", "at least 1")),
    "batch-size-not-a-number": Case(_with_options("--batch-size", "eight"), ("--batch-size", "eight")),
    "unknown-dtype": Case(_with_options("--dtype", "float8"), ("--dtype", "float8")),
    "unknown-template": Case(_with_options("--template", "fancy"), ("--template", "fancy")),
    "unknown-device": Case(_with_options("--device", "tpu"), ("--device tpu", "unknown device")),
    "cuda-without-cuda": Case(_with_options("--device", "cuda"), ("--device cuda", "CUDA is not available")),
    "cache-dir-unwritable": Case(
        _with_options("--cache-dir", "/proc/lalm-bench-cache"),
        ("--cache-dir /proc/lalm-bench-cache", "not writable"),
    ),
    "cache-dir-is-a-file": Case(_cache_dir_is_file, ("--cache-dir", "a-file", "not a folder")),
    "out-unwritable": Case(_with_options("--out", "/proc/x.safetensors"), ("--out /proc/x.safetensors",)),
    "out-is-a-folder": Case(_out_is_folder, ("--out", "is a folder")),
    "run-out-under-a-file": Case(_run_out_under_file, ("--out /dev/null/reports", "is a file")),
    "run-results-unwritable": Case(_run_results_unwritable, ("--results /proc/lalm-bench-results",)),
    "unknown-model": Case(
        lambda tmp: _extract(_ok_set(tmp), model="no-such-model"), ("no-such-model", "gemma-3-270m-q4km")
    ),
    "run-unknown-model": Case(
        lambda tmp: ["run", "--model", "nope-model", "--probes", str(_ok_set(tmp))], ("--model nope-model",)
    ),
    "unknown-probe-set": Case(
        lambda tmp: ["extract", "--model", WHISPER, "--probes", "no-such-set"],
        ("no-such-set", "text-parallel"),
    ),
    "hf-id-malformed": Case(
        lambda tmp: _extract(_ok_set(tmp), model="hf:no-slash"), ("hf:no-slash", "owner")
    ),
    "consistency-same-profiles": Case(
        lambda tmp: ["consistency", "--profile", "ci", "--against", "ci"], ("--profile and --against",)
    ),
    # report and latents files
    "report-no-records": Case(_report_empty, ("no claim records",)),
    "report-garbage-record": Case(_report_garbage_record, ("T1-x@1.json", "not a readable claim record")),
    "report-missing-folder": Case(_report_missing_folder, ("no-such-results",)),
    "report-out-unwritable": Case(_report_out_unwritable, ("--out /proc/lalm-bench-report", "not writable")),
    "import-garbage-latents": Case(_import_garbage, ("x.safetensors", "not a lalm-bench latents file")),
    "import-missing-latents": Case(_import_missing, ("nothing.safetensors",)),
}


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input_is_a_clear_error(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES[name]
    argv = case.build(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, _out, err = run_cli(argv, capsys)
    assert code == case.code, f"{name}: exit {code}, expected {case.code}; stderr:\n{err}"
    assert "Traceback" not in err, err
    for culprit in case.names:
        assert culprit in err, f"{name}: stderr does not name {culprit!r}:\n{err}"
    # nothing computed or written (no stray probe files from the writability checks)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_there_are_at_least_40_cases() -> None:
    assert len(CASES) >= 40


def test_every_problem_is_reported_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Three bad rows and two bad options: five lines, one per problem, in one run."""
    rows = [
        text_row("a", "\u200b"),
        text_row("b", "fine", language="xx"),
        speech_row("c", "../up.wav"),
    ]
    folder = write_manifest(tmp_path / "set", rows)
    (tmp_path / "file").write_text("x", encoding="utf-8")
    argv = _extract(folder, "--device", "tpu", "--cache-dir", str(tmp_path / "file"))
    code, _out, err = run_cli(argv, capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 5, err
    assert "5 problem(s) found before any computation" in err
    for culprit in (
        "manifest.jsonl:1",
        "manifest.jsonl:2",
        "manifest.jsonl:3",
        "--device tpu",
        "--cache-dir",
    ):
        assert any(culprit in line for line in lines), (culprit, err)


def test_hf_id_fails_within_seconds_when_the_hub_is_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    started = time.monotonic()
    code, _out, err = run_cli(_extract(_ok_set(tmp_path), model="hf:nobody/not-a-cached-lalm"), capsys)
    assert time.monotonic() - started < 15
    assert code == 2
    assert "nobody/not-a-cached-lalm" in err and "unreachable" in err and "Traceback" not in err


def test_hf_id_fails_at_once_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    code, _out, err = run_cli(_extract(_ok_set(tmp_path), model="hf:nobody/not-a-cached-lalm"), capsys)
    assert time.monotonic() - started < 15
    assert code == 2 and "nobody/not-a-cached-lalm" in err and "HF_HUB_OFFLINE" in err


def test_corrupt_cache_entries_are_recomputed_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = parallel_text_set(tmp_path / "set", meanings=1, languages=("en", "fr"))
    argv = _extract(folder, "--cache-dir", str(tmp_path / "cache"), "--device", "cpu", model=WHISPER)
    assert run_cli(argv, capsys)[0] == 0
    entries = sorted((tmp_path / "cache").rglob("*.npz"))
    assert len(entries) == 2
    entries[0].write_bytes(b"torn write")
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "1 corrupt entries were recomputed" in err
    assert json.loads(out.strip().splitlines()[-1])["cache_hits"] == 1
