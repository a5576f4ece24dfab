"""Properties of manifest loading: a malformed manifest is always a ProbeSetError (never another exception,
never a silent success with fewer rows), and a valid one loads the same set whatever its row order.

Decision tested here: the content hash does not depend on row order (the loader sorts samples by id), so
re-ordering a manifest keeps expectations keyed by the probe-set hash valid.
"""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmark.core.errors import ProbeSetError
from benchmark.core.schema import ISO_639_1, Sample
from benchmark.probes.io import MAX_TEXT_CHARS, load_probe_set, text_problem, write_manifest

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LANGS = sorted(ISO_639_1)

ids = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=12)
texts = st.text(min_size=1, max_size=60).filter(lambda t: t.strip() != "" and text_problem(t) is None)
labels = st.none() | st.text(string.ascii_lowercase, min_size=1, max_size=6)


@st.composite
def text_rows(draw: st.DrawFn, min_size: int = 1) -> list[dict[str, Any]]:
    """Valid text-only rows with unique ids."""
    row_ids = draw(st.lists(ids, min_size=min_size, max_size=8, unique=True))
    rows = []
    for row_id in row_ids:
        row = {
            "id": row_id,
            "modality": "text",
            "text": draw(texts),
            "language": draw(st.sampled_from(LANGS)),
        }
        for axis in ("speaker", "gender", "meaning_id"):
            value = draw(labels)
            if value is not None:
                row[axis] = value
        rows.append(row)
    return rows


def write_jsonl(folder: Path, rows: list[Any]) -> None:
    (folder / "manifest.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )


def load_or_error(folder: Path, n_rows: int) -> None:
    """The property: either a ProbeSetError, or every row loaded. Any other exception fails the test."""
    try:
        probe_set = load_probe_set(folder)
    except ProbeSetError:
        return
    assert len(probe_set.samples) == n_rows


junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=5,
)


@SETTINGS
@given(rows=text_rows(), data=st.data())
def test_random_field_values_never_escape_as_other_errors(
    rows: list[dict[str, Any]], data: st.DataObject
) -> None:
    row = data.draw(st.sampled_from(rows))
    field = data.draw(st.sampled_from([*Sample.model_fields, "unknown_field"]))
    row[field] = data.draw(junk)
    with tempfile.TemporaryDirectory() as tmp:
        write_jsonl(Path(tmp), rows)
        load_or_error(Path(tmp), len(rows))


@SETTINGS
@given(rows=text_rows(), data=st.data())
def test_definite_defects_are_always_probe_set_errors(
    rows: list[dict[str, Any]], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(rows) - 1))
    defect = data.draw(
        st.sampled_from(
            [
                "drop_required",
                "unknown_field",
                "wrong_type",
                "bad_language",
                "duplicate",
                "long_text",
                "not_object",
            ]
        )
    )
    row = rows[index]
    if defect == "drop_required":
        del row[data.draw(st.sampled_from(["id", "modality", "text", "language"]))]
    elif defect == "unknown_field":
        row[
            data.draw(
                st.text(string.ascii_lowercase, min_size=1).filter(lambda k: k not in Sample.model_fields)
            )
        ] = 1
    elif defect == "wrong_type":
        field = data.draw(st.sampled_from(["id", "text", "language", "speaker", "extra", "preprocessing"]))
        row[field] = data.draw(st.integers() | st.lists(st.integers(), min_size=1) | st.just({"a": [1]}))
    elif defect == "bad_language":
        row["language"] = data.draw(st.text(max_size=4).filter(lambda c: c not in ISO_639_1))
    elif defect == "duplicate":
        rows.append(dict(row))
    elif defect == "long_text":
        row["text"] = "x" * (MAX_TEXT_CHARS + data.draw(st.integers(1, 50)))
    else:
        rows[index] = data.draw(st.lists(st.integers(), max_size=2) | st.text(max_size=3).map(json.dumps))
    with tempfile.TemporaryDirectory() as tmp:
        write_jsonl(Path(tmp), rows)
        try:
            load_probe_set(Path(tmp))
        except ProbeSetError as exc:
            assert "manifest.jsonl:" in str(exc)
        else:
            raise AssertionError(f"defect {defect!r} loaded without error")


def _audio(kind: str, path: Path, payload: bytes) -> None:
    if kind == "random_bytes":
        path.write_bytes(payload)
    elif kind == "nan":
        wave = np.full(800, 0.1, dtype=np.float32)
        wave[len(payload) % 800] = np.nan
        sf.write(path, wave, 16_000, subtype="FLOAT")
    elif kind == "zero_length":
        sf.write(path, np.zeros(0, dtype=np.float32), 16_000)
    else:
        sf.write(path, np.zeros(800, dtype=np.float32), 16_000)


@SETTINGS
@given(kind=st.sampled_from(["random_bytes", "nan", "zero_length", "silent"]), payload=st.binary(max_size=64))
def test_bad_audio_is_always_a_probe_set_error(kind: str, payload: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sf.write(folder / "good.wav", 0.2 * np.sin(np.arange(800) / 5).astype(np.float32), 16_000)
        _audio(kind, folder / "bad.wav", payload)
        rows = [
            {"id": name, "modality": "speech", "text": "hi", "language": "en", "audio_path": f"{name}.wav"}
            for name in ("good", "bad")
        ]
        write_jsonl(folder, rows)
        try:
            load_probe_set(folder)
        except ProbeSetError as exc:
            assert "manifest.jsonl:2: field 'audio_path'" in str(exc)
        else:
            raise AssertionError(f"{kind} audio loaded without error")


@SETTINGS
@given(
    rows=text_rows(min_size=2),
    seed=st.integers(0, 2**32 - 1),
    fmt=st.sampled_from(["jsonl", "csv", "parquet"]),
)
def test_valid_manifests_load_fully_and_hash_independently_of_order(
    rows: list[dict[str, Any]], seed: int, fmt: str
) -> None:
    samples = [Sample(**r) for r in rows]
    shuffled = [samples[i] for i in np.random.default_rng(seed).permutation(len(samples))]
    with tempfile.TemporaryDirectory() as tmp:
        first, second = Path(tmp) / "a", Path(tmp) / "b"
        first.mkdir()
        second.mkdir()
        write_manifest(first / f"manifest.{fmt}", samples)
        write_manifest(second / f"manifest.{fmt}", shuffled)
        a, b = load_probe_set(first), load_probe_set(second)
    assert len(a.samples) == len(b.samples) == len(rows)
    assert a.content_hash() == b.content_hash()
    assert {s.id: s for s in a.samples} == {s.id: s for s in samples}
