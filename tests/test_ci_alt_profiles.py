"""The ``ci-alt`` profile of every shipped probe set: disjoint from ``ci`` in sentences, the same design shape
and size, and adding it left the ``ci``/``full`` content hashes (the keys of recorded expectations) unchanged.

Reads the committed ``probeset.json`` and manifests only; the hash test needs the built audio and skips a
speech set without it.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from benchmark.core.profiles import PROFILE_CHOICES
from benchmark.core.schema import ProbeSet, Sample
from benchmark.probes.catalog import FIXTURES_DIR
from benchmark.probes.io import PROFILE_NAMES, load_probe_set
from benchmark.probes.recipes import SET_NAMES, grid_speakers_ci, grid_speakers_ci_alt

EXPECTATIONS = Path(__file__).resolve().parents[1] / "reports" / "baselines" / "expectations.json"
#: Axes whose value counts must match between ci and ci-alt (the design cells of every set).
CELL_AXES = ("modality", "language", "variant", "device", "voice_set", "normalisation", "gender", "pair_role")
#: Axes ci-alt changes on purpose: sentences always, voices where the set has other voices.
CHANGED_AXES = ("meaning_id", "group_id", "pair_id", "speaker", "accent", "age_group")


def _profile(name: str, profile: str) -> list[Sample]:
    folder = FIXTURES_DIR / name
    header = json.loads((folder / "probeset.json").read_text(encoding="utf-8"))
    rows = {}
    for line in (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows[row["id"]] = row
    return [Sample(**rows[i]) for i in header["profiles"][profile]]


def _meanings(samples: list[Sample]) -> set[str]:
    return {s.group_id or s.meaning_id or "" for s in samples}


def _cells(samples: list[Sample], axes: tuple[str, ...]) -> Counter[tuple[str | None, ...]]:
    return Counter(tuple(s.label(a) for a in axes) for s in samples)


@pytest.mark.parametrize("name", SET_NAMES)
def test_ci_alt_is_disjoint_from_ci_in_sentences(name: str) -> None:
    ci, alt = _profile(name, "ci"), _profile(name, "ci-alt")
    assert not {s.id for s in ci} & {s.id for s in alt}
    assert not _meanings(ci) & _meanings(alt), name
    assert {s.id for s in alt} <= {s.id for s in _profile(name, "full")}


@pytest.mark.parametrize("name", SET_NAMES)
def test_ci_alt_has_the_size_and_design_cells_of_ci(name: str) -> None:
    ci, alt = _profile(name, "ci"), _profile(name, "ci-alt")
    assert len(alt) == len(ci)
    assert _cells(alt, CELL_AXES) == _cells(ci, CELL_AXES), name
    for axis in CHANGED_AXES:  # as many values (meanings, speakers...) per profile, whichever they are
        assert len({s.label(axis) for s in alt}) == len({s.label(axis) for s in ci}), (name, axis)
    per_meaning = Counter(len([s for s in alt if s.meaning_id == m]) for m in {s.meaning_id for s in alt})
    assert per_meaning == Counter(
        len([s for s in ci if s.meaning_id == m]) for m in {s.meaning_id for s in ci}
    )


@pytest.mark.parametrize(
    ("name", "expected_new"),
    [
        ("speech-parallel", True),
        ("speech-grid", True),
        ("speech-voices", True),
        ("speech-gain", False),
        ("crossmodal", False),
    ],
)
def test_ci_alt_voices_differ_where_the_full_set_has_others(name: str, expected_new: bool) -> None:
    ci = {s.speaker for s in _profile(name, "ci")} - {None}
    alt = {s.speaker for s in _profile(name, "ci-alt")} - {None}
    assert bool(alt - ci) == expected_new, (name, sorted(alt), sorted(ci))
    if name in ("speech-parallel", "speech-grid"):
        assert not alt & ci, name
    if not expected_new:  # the probe set says which axis could not change
        header = json.loads((FIXTURES_DIR / name / "probeset.json").read_text(encoding="utf-8"))
        assert any("ci-alt" in caveat and "could not change" in caveat for caveat in header["caveats"]), name


def test_grid_ci_alt_keeps_the_accent_gender_age_balance() -> None:
    ci, alt = grid_speakers_ci(), grid_speakers_ci_alt()
    assert len(alt) == len(ci) == 12 and not {s.id for s in ci} & {s.id for s in alt}
    for key in (
        lambda s: (s.accent, s.gender),
        lambda s: (s.gender, s.age_group),
        lambda s: (s.accent, s.age_group),
    ):
        assert Counter(map(key, alt)) == Counter(map(key, ci))


def test_every_place_accepts_ci_alt() -> None:
    from typing import get_args

    from benchmark.claims.data import Budget
    from benchmark.cli.main import build_parser

    assert "ci-alt" in PROFILE_NAMES
    assert set(get_args(ProbeSet.model_fields["profile"].annotation)) == set(PROFILE_CHOICES)
    assert Budget.for_profile("ci-alt") == Budget.for_profile("ci")
    # calibrate takes sizes (ci, full), not profiles: ci-alt has the ci size
    for command in (["run"], ["extract", "--model", "m", "--probes", "p"]):
        assert build_parser().parse_args([*command, "--profile", "ci-alt"]).profile == "ci-alt"


def _expected_hashes() -> dict[tuple[str, str], str]:
    entries = json.loads(EXPECTATIONS.read_text(encoding="utf-8"))["entries"]
    return {
        (e["probe_set"], e["profile"]): e["probe_set_hash"]
        for e in entries
        if e.get("status") == "measured" and e.get("profile") in PROFILE_NAMES
    }


@pytest.mark.parametrize(
    ("name", "profile", "expected"), [(n, p, h) for (n, p), h in sorted(_expected_hashes().items())]
)
def test_recorded_expectations_still_match_their_probe_set_hash(
    name: str, profile: str, expected: str
) -> None:
    folder = FIXTURES_DIR / name
    header = json.loads((folder / "probeset.json").read_text(encoding="utf-8"))
    needs_audio = any(i.startswith("speech-") for i in header["profiles"][profile]) or name.startswith(
        "speech-"
    )
    if needs_audio and not (folder / "audio").is_dir():
        pytest.skip(f"{folder}/audio is not built (lalm-bench fixtures build)")
    assert load_probe_set(folder, profile=profile, decode_audio=False).content_hash() == expected


@pytest.mark.parametrize("name", ["text-parallel", "text-paraphrase"])
def test_dropping_ci_alt_from_the_header_changes_no_hash(name: str, tmp_path: Path) -> None:
    source = FIXTURES_DIR / name
    copy = tmp_path / name
    shutil.copytree(source, copy)
    header = json.loads((copy / "probeset.json").read_text(encoding="utf-8"))
    del header["profiles"]["ci-alt"]
    (copy / "probeset.json").write_text(json.dumps(header), encoding="utf-8")
    for profile in ("ci", "full"):
        assert (
            load_probe_set(copy, profile=profile).content_hash()
            == load_probe_set(source, profile=profile).content_hash()
        )


def test_builder_writes_ci_alt_only_as_a_whole_disjoint_block() -> None:
    from benchmark.probes.build import _profiles
    from benchmark.probes.recipes import SetSpec, profile_of

    assert [profile_of(k, 2) for k in range(5)] == ["ci", "ci", "ci-alt", "ci-alt", None]
    ids = ["a", "b", "c", "d", "e"]
    whole = SetSpec("s", "", [], [], ci=["a", "b"], ci_alt=["d", "c"])
    assert _profiles(whole, ids) == {"ci": ["a", "b"], "ci-alt": ["c", "d"], "full": ids}
    short = SetSpec("s", "", [], [], ci=["a", "b"], ci_alt=["c"])  # a source too short for a second block
    assert _profiles(short, ids) == {"ci": ["a", "b"], "full": ids}
    with pytest.raises(ValueError, match="probe set 's': ci-alt shares samples with ci: \\['b'\\]"):
        _profiles(SetSpec("s", "", [], [], ci=["a", "b"], ci_alt=["b", "c"]), ids)
    with pytest.raises(ValueError, match="ci-alt profile names unknown samples \\['z'\\]"):
        _profiles(SetSpec("s", "", [], [], ci=["a"], ci_alt=["z"]), ids)
