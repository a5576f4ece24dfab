"""The command line's listing and error contracts: nothing here loads weights or reaches the hub."""

from __future__ import annotations

import json

import pytest

from benchmark.cli.main import main

REQUIRED_MODELS = (
    "whisper-base-ct2",
    "whisper-tiny.en-ct2",
    "gemma-3-270m-q4km",
    "smollm2-135m-q41",
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
)
#: Layer counts known without loading (the offline entries declare theirs; hub entries learn them at load).
KNOWN_BLOCKS = {
    "whisper-base-ct2": 6,
    "whisper-tiny.en-ct2": 4,
    "gemma-3-270m-q4km": 18,
    "smollm2-135m-q41": 30,
}
#: Label axes the claims of CLAIMS.md group, pair or split by (T1 pair roles, S2 devices, S3 normalisation,
#: S4 voice sets, D1 demography, M* modality, T3-T6 punctuation variants...).
CLAIM_AXES = {
    "modality",
    "language",
    "meaning_id",
    "group_id",
    "pair_id",
    "pair_role",
    "speaker",
    "gender",
    "age_group",
    "accent",
    "device",
    "variant",
    "voice_set",
    "normalisation",
}


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> object:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def model_rows() -> dict[str, dict]:
    from benchmark.models.catalog import describe_models

    return {row["name"]: row for row in describe_models()}


def test_models_json_lists_every_required_entry(capsys: pytest.CaptureFixture[str]) -> None:
    rows = {row["name"]: row for row in _json(capsys, ["models", "--json"])}  # type: ignore[union-attr]
    assert set(REQUIRED_MODELS) <= set(rows)
    for name in REQUIRED_MODELS:
        row = rows[name]
        for key in (
            "hub_id",
            "revision",
            "modalities",
            "languages",
            "templates",
            "available",
            "availability",
        ):
            assert key in row, f"{name}: no {key!r}"
        assert row["revision"], name
        assert isinstance(row["available"], bool)
        assert "shared-suffix" in row["templates"], name
        if name in KNOWN_BLOCKS:  # offline weights: named for what they are, revision = file sha256
            assert row["hub_id"] is None and len(row["revision"]) == 64
            assert row["modalities"] == (["text"] if "whisper" not in name else ["text", "speech"])
        else:
            assert row["hub_id"] and "/" in row["hub_id"]
            assert row["modalities"] == ["text", "speech"]
            assert row["revision"] == "unresolved"  # never a made-up SHA before `lalm-bench lock`


def test_models_json_layers_where_known(model_rows: dict[str, dict]) -> None:
    """Layer names are listed where known without loading (offline entries); hub entries give null."""
    for name in REQUIRED_MODELS:
        row = model_rows[name]
        assert "layers" in row, f"{name}: describe_models() gives no 'layers'"
        if name in KNOWN_BLOCKS:
            blocks = KNOWN_BLOCKS[name]
            assert row["layers"] == ["emb", *[f"block{i}" for i in range(blocks)], "final_norm"]
        else:
            assert row["layers"] is None


def test_unknown_model_exits_2_listing_known_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["extract", "--model", "no-such-model", "--probes", "text-paraphrase"]) == 2
    error = capsys.readouterr().err
    assert "no-such-model" in error
    for name in ("whisper-base-ct2", "gemma-3-270m-q4km", "qwen2-audio-7b"):
        assert name in error


def test_calibrate_refuses_unknown_claims_before_extracting(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["calibrate", "--claim", "X9", "--claim", "T1-paraphrase-closer", "--results", "/nonexistent"])
        == 2
    )
    error = capsys.readouterr().err
    assert "--claim X9: no single-model claim of that id" in error and "T1-paraphrase-closer" in error


@pytest.mark.parametrize("option", ["--jobs", "--seeds"])
def test_calibrate_counts_must_be_positive(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["calibrate", option, "0"])
    assert exit_.value.code == 2
    assert f"argument {option}: must be at least 1, got 0" in capsys.readouterr().err


def test_probes_json_lists_shipped_sets_and_claim_axes(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _json(capsys, ["probes", "--json"])
    assert isinstance(rows, list) and rows
    names = {row["name"] for row in rows}
    assert {"text-parallel", "text-paraphrase", "speech-grid", "crossmodal"} <= names
    for row in rows:
        assert "error" not in row, f"{row['name']}: {row.get('error')}"
        assert row["profiles"] and all(p["n_samples"] > 0 for p in row["profiles"].values())
    carried = set().union(*(row["label_axes"] for row in rows))
    assert carried >= CLAIM_AXES, f"no shipped set carries {sorted(CLAIM_AXES - carried)}"


def test_hf_id_errors_clearly_offline(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(
        [
            "extract",
            "--model",
            "hf:nobody/not-a-cached-lalm",
            "--probes",
            "text-paraphrase",
            "--device",
            "cpu",
            "--no-cache",
        ]
    )
    error = capsys.readouterr().err
    assert code == 2
    assert "nobody/not-a-cached-lalm" in error and "Traceback" not in error
    assert main(["extract", "--model", "hf:no-slash", "--probes", "text-paraphrase"]) == 2
    assert "owner" in capsys.readouterr().err
