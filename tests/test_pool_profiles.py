"""The ``pool`` profile (every shipped set has one) and the profiles it must not disturb.

Why these tests: calibration at the ``full`` size draws fresh samples of design units from a population that
has to be larger than ``full``, so later-authored items (m39-m80, p37-p144, grid sentences c09-c16) joined the
manifests under a new ``pool`` profile (first in text-parallel, text-paraphrase and speech-grid; the other
speech sets, whose later items had to be synthesised, came last). Recorded expectations are keyed by the ``ci``/``full``
content hashes, so adding items must leave the ``ci``, ``ci-alt`` and ``full`` profiles of every set exactly as
they were: same ids, same rows (and so the same clips and content hashes). The pins below were computed from
the manifests committed before the pool existed (commit ``BEFORE_POOL``); where git and that commit are
available, the profiles are also compared with that commit's ``probeset.json`` directly.

Reads the committed manifests only; nothing here needs the built audio.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from benchmark.core.profiles import CI_SIZED, PROFILE_CHOICES, PROFILE_NAMES
from benchmark.core.schema import ProbeSet, Sample
from benchmark.probes import devices
from benchmark.probes.catalog import FIXTURES_DIR
from benchmark.probes.io import load_probe_set
from benchmark.probes.recipes import (
    FULL_MEANINGS,
    FULL_PARAPHRASES,
    GAIN_FULL_BEFORE,
    GAIN_N_SENTENCES,
    GAIN_N_SENTENCES_POOL,
    GAIN_SPEAKERS,
    GAIN_SPEAKERS_POOL,
    GRID_N_SENTENCES,
    GRID_N_SENTENCES_POOL,
    POOL_MEANINGS,
    SET_NAMES,
    VOICES_N_SENTENCES,
    VOICES_N_SENTENCES_POOL,
    gain_speakers,
    grid_speakers,
)

REPO = Path(__file__).resolve().parents[1]
#: The last commit whose manifests had no pool-only items.
BEFORE_POOL = "5dc48c1ec977b4dc826094cf78e113cb6637b753"
#: (set, profile) -> (sha256 of the profile's id list in header order, ProbeSet.content_hash of its rows),
#: both computed from the manifests and headers at BEFORE_POOL. The ci content hashes are the ones recorded
#: in reports/baselines/expectations.json.
PINNED: dict[tuple[str, str], tuple[str, str]] = {
    ("text-parallel", "ci"): (
        "9f29ca97af60ee3c1de0da68d22a172744d4b1df0ec8e0940743390ecb0f8c5e",
        "ae32df18463a2afcb71f42f84970167e8d76fbf5dca0a4a798a3ae7291ecf2cc",
    ),
    ("text-parallel", "ci-alt"): (
        "d4b42c7dc5a2521d27473027f4f3d29a7ca84a2a900d61df0cc21c7bc4da75a6",
        "a58c1e5e354974b6c4626998a7a48fb8a48bec578888df74b713579248561de6",
    ),
    ("text-parallel", "full"): (
        "46b984724796951d723246c2186f6d9dc5c394e70d2578620272b3198ff74909",
        "096d25b8e294caa983f8d719d3b3b200d93d3b870097cad05468c245c9ef5c3d",
    ),
    ("text-paraphrase", "ci"): (
        "ca37c7f31bb92db2de66056255e4ebf22f0be29c0394c944ea1de85b2ef253c7",
        "6ac7e5ef36e0a19e18cd7c4cb32d7b25864dc2fd7092a36b2eaf6d598ee18170",
    ),
    ("text-paraphrase", "ci-alt"): (
        "b95f618bfcce3151c466fd74d038b60780ac5ce11ed82d473f7c12a09722fe67",
        "6b666f745ae45e3c9339443940aa07194eb3fe2496602cb093da6747abaf7193",
    ),
    # Raised from p01-p36 to p01-p72 on 2026-12-06 on purpose: T1's power (benchmark.probes.recipes.FULL_PARAPHRASES);
    # the former ids and their pins are in RAISED.
    ("text-paraphrase", "full"): (
        "9f08044cd027c0cd61a3d6c443f20727ea0a3d35287b753a409282a81c14542d",
        "8cc7c8ec1e5ad5686668fe005d503445f6ce46c0490ae41d20d425edfa13cedd",
    ),
    ("speech-parallel", "ci"): (
        "9759c2041b3ab7821c125de48bf811bda345c67ea523c46177e9c15b783b2297",
        "46bff98d820c5dbf31f0ec41270894884b3e2d58abd5cc3d19dfe04ead9ade51",
    ),
    ("speech-parallel", "ci-alt"): (
        "4bfc756533d08941292e7a52651e68d21830b479f5d6a7df6379c30d1bea779a",
        "7a0b1bedf9274c0f4ee9806e1732fb996df8edad3dd561c3665a8494541e3bef",
    ),
    ("speech-parallel", "full"): (
        "bc6c82fa50806c2d9c094901e29693ff6449311e8bb5ffdbe815da84d922bfb0",
        "1900e11b44f4bd0dfd87f8dd35ad11c7366f36c060aff285faed5cfde126699f",
    ),
    ("speech-grid", "ci"): (
        "54bc4f74400ed4001ef09721f90bcf76152b016370de227dbf528a9ef45af261",
        "eaf9e075a4a48a30906da098ea7b298203ea59b9131013fb7184405c54bb585e",
    ),
    ("speech-grid", "ci-alt"): (
        "a283edf5b21530ceab23e5e2ca479416046e1beb2d294c9452f858d4e5aff7e7",
        "a25d193a831c937a4cf12d0fcfd340e02efeb9b9083ac4e41b486fdbe65fa8d1",
    ),
    ("speech-grid", "full"): (
        "501ab1bbdc8d6d60bed1d06d034ab0c97c33881320a67a6485dbc773da898dfd",
        "9bac64b50e813e9a060e160a3452ec816abef622fdbfcb8867aceb0361903b3b",
    ),
    ("speech-gain", "ci"): (
        "05ff0c2baf4b5e477a1cedd08ade5c2dee9e0960dd00a940d79cf7f9d5e81879",
        "e366dcf6c142c49329f116607225b08808b5f680f9d99bb5aaee46ab5b78cac3",
    ),
    ("speech-gain", "ci-alt"): (
        "fe6784eb689e03255369349cdbb7ba249620b6604e99c827662732cb0b273b4c",
        "4e05071e139e9aa486881606912fee86f74964e66a27366db5f314938bc30f52",
    ),
    # Raised from c01-c08 x 8 speakers to c01-c16 x 12 on 2026-12-07 on purpose: S3's power
    # (benchmark.probes.recipes.GAIN_N_SENTENCES); the former ids and their pins are in RAISED.
    ("speech-gain", "full"): (
        "054c41f80557fcb31e49cddd73b958de7589a1f4316aad78f9d684cdbbda9b6f",
        "218c4b5e5c3398dd7f09bf9fdc208f69598b1649a3af53d845d0be0309bc5d3d",
    ),
    ("speech-voices", "ci"): (
        "605267c8fe47bf23b09f564bd795a7f99ed2bea4c1783768c377713a286b0194",
        "8fac7d0f45e235568e3419bf10ad4b0ce6615047baf6ddb458e827e279389d9e",
    ),
    ("speech-voices", "ci-alt"): (
        "86ca43e43e8c48e79616c8b9e9d14f9b5805fc5a1aea62839a87957c6ea6fab6",
        "44845d4e6184cb043deb54e57beaa3958553183384d32c0e949fc59c9e7a844c",
    ),
    # Raised from c01-c08 to c01-c16 on 2026-12-08 on purpose: S4's power
    # (benchmark.probes.recipes.VOICES_N_SENTENCES); the former ids and their pins are in RAISED.
    ("speech-voices", "full"): (
        "d0afa38bdde3e6891fb39caa968adaf90148b688b5269025ff79eaf55a0d3730",
        "2977ff70877b21e3e48e9776726ba84da96fe2cf32bfbcffd9c74f431ff6b661",
    ),
    ("crossmodal", "ci"): (
        "64e1224e2b27da9e06dc317e810ee88f54ae4978e7bf623a833d6e1f054a0336",
        "e8859e577e27a3992ca62cffd5aaf45b296336d100e52f5305cdc9a8be7321f2",
    ),
    ("crossmodal", "ci-alt"): (
        "8296f3f190b000355f2c60bc17fa67bcfc8ec72e807bbb5108b83e987cbc53f7",
        "8044f5ecda3580aee7997692862ad6adb31cb1e3e9fea283146406e3e768caae",
    ),
    ("crossmodal", "full"): (
        "a0129c2384ba0659fd95be56b56c292fb86199a8d8a1959fe8f0075af9c85fe2",
        "8b3941e64a063b67caef62e263726136039c5eda1ed3c97daa753494d694e2c2",
    ),
}


#: Profiles raised on purpose after the pool existed: (set, profile) -> (number of ids before, sha256 of those
#: ids, their content hash), pinned like PINNED; the former ids stay first and unchanged.
RAISED: dict[tuple[str, str], tuple[int, str, str]] = {
    ("text-paraphrase", "full"): (
        36 * 8,  # p01-p36 x 4 roles x punct/nopunct
        "a2b9d4048b4f16f4df233fb7c62620ec11140e04989a06f9fab72320944e1344",
        "799b3fb2d432d3f651e4b93cd9c9a4286aafd0c023002d94543f10605bd098d6",
    ),
    ("speech-gain", "full"): (
        8 * 8 * 2,  # c01-c08 x the first 8 younger speakers x raw/peak
        "ee0aacc0c8935011a2c6f03332c55b7a1faa0b5d25d11e43fab732f13ba52029",
        "daa397cc4f79e9b5f8849d44576503a65f1015a0e91dbb30eac11252013d2638",
    ),
    ("speech-voices", "full"): (
        8 * 5 * 6 * 2,  # c01-c08 x devices x takes x single/multi
        "2882a0088988e770df06db1c195839452d2326bf3170f8994e2ed351917fb4f8",
        "ebf9dddb7d32287b1ae85326b3c4d29c5a882763ee79ec21d5133d29dbdfe50f",
    ),
}


@pytest.mark.parametrize(("name", "profile"), sorted(RAISED))
def test_raised_profiles_keep_their_former_ids_first(name: str, profile: str) -> None:
    n_before, id_digest, content = RAISED[(name, profile)]
    former = _header(name)["profiles"][profile][:n_before]
    assert hashlib.sha256("\n".join(former).encode()).hexdigest() == id_digest, (name, profile)
    assert _content_hash(name, _rows(name), former) == content, (name, profile)


def _header(name: str) -> dict:
    return json.loads((FIXTURES_DIR / name / "probeset.json").read_text(encoding="utf-8"))


def _rows(name: str) -> dict[str, dict]:
    lines = (FIXTURES_DIR / name / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return {row["id"]: row for row in map(json.loads, filter(str.strip, lines))}


def _content_hash(name: str, rows: dict[str, dict], ids: list[str]) -> str:
    """The content hash the loader gives the profile (samples sorted by id), without touching the audio."""
    samples = sorted((Sample(**rows[i]) for i in ids), key=lambda s: s.id)
    return ProbeSet(name=name, samples=samples).content_hash()


@pytest.mark.parametrize(("name", "profile"), sorted(PINNED))
def test_existing_profiles_keep_their_ids_and_content(name: str, profile: str) -> None:
    ids = _header(name)["profiles"][profile]
    id_digest, content = PINNED[(name, profile)]
    assert hashlib.sha256("\n".join(ids).encode()).hexdigest() == id_digest, (name, profile)
    assert _content_hash(name, _rows(name), ids) == content, (name, profile)


def _git_show(path: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    done = subprocess.run(
        [git, "-C", str(REPO), "show", f"{BEFORE_POOL}:{path}"], capture_output=True, text=True, check=False
    )
    return done.stdout if done.returncode == 0 else None


@pytest.mark.optin
@pytest.mark.parametrize("name", SET_NAMES)
def test_profiles_equal_the_manifests_committed_before_the_pool(name: str) -> None:
    """Opt-in: needs the git history of the commit before the pool (a shallow clone lacks it); the pinned hashes
    above check the same property everywhere."""
    before = _git_show(f"fixtures/{name}/probeset.json")
    manifest = _git_show(f"fixtures/{name}/manifest.jsonl")
    if before is None or manifest is None:
        pytest.skip(f"git or commit {BEFORE_POOL[:7]} is not available (shallow clone?); PINNED covers it")
    old_profiles = json.loads(before)["profiles"]
    assert set(old_profiles) == {"ci", "ci-alt", "full"}
    now = _header(name)["profiles"]
    for profile, ids in old_profiles.items():
        if (name, profile) in RAISED:
            assert now[profile][: len(ids)] == ids, (name, profile)  # appended to on purpose
        else:
            assert now[profile] == ids, (name, profile)
    # Every row committed before is still there, byte for byte (same fields, same clip hash).
    now_lines = set((FIXTURES_DIR / name / "manifest.jsonl").read_text(encoding="utf-8").splitlines())
    assert set(filter(str.strip, manifest.splitlines())) <= now_lines, name


@pytest.mark.parametrize("name", SET_NAMES)
def test_every_set_has_a_pool(name: str) -> None:
    header, rows = _header(name), _rows(name)
    profiles = header["profiles"]
    assert profiles["pool"] == list(rows), name  # every sample, in manifest order
    assert set(profiles["full"]) < set(profiles["pool"]), name
    assert any("pool" in c for c in header["caveats"]), name


def _units(name: str, ids: list[str], rows: dict[str, dict]) -> Counter[str]:
    """Samples per design unit (meaning, paraphrase set or grid sentence)."""
    key = "pair_id" if name == "text-paraphrase" else "meaning_id"
    return Counter(rows[i][key] for i in ids)


@pytest.mark.parametrize(
    ("name", "n_full", "n_pool", "per_unit"),
    [
        ("text-parallel", FULL_MEANINGS, 80, 16),  # 8 languages x punct/nopunct
        ("text-paraphrase", FULL_PARAPHRASES, 144, 8),  # 4 roles x punct/nopunct
        ("speech-grid", GRID_N_SENTENCES, GRID_N_SENTENCES_POOL, 24 * 5),  # speakers x devices
        ("speech-parallel", FULL_MEANINGS, POOL_MEANINGS, 8 * 4),  # languages x voice variants
        ("crossmodal", FULL_MEANINGS, POOL_MEANINGS, 8 * (2 + 2)),  # languages x (2 texts + 2 voices)
        (
            "speech-voices",
            VOICES_N_SENTENCES,
            VOICES_N_SENTENCES_POOL,
            5 * 6 * 2,
        ),  # devices x takes x voice sets
    ],
)
def test_pool_has_the_full_design_on_more_units(name: str, n_full: int, n_pool: int, per_unit: int) -> None:
    profiles, rows = _header(name)["profiles"], _rows(name)
    full, pool = _units(name, profiles["full"], rows), _units(name, profiles["pool"], rows)
    assert len(full) == n_full and len(pool) == n_pool, name
    assert set(full.values()) == set(pool.values()) == {per_unit}, name
    cell_axes = (
        "modality",
        "language",
        "variant",
        "pair_role",
        "speaker",
        "device",
        "accent",
        "gender",
        "age_group",
    )

    def cells(ids: list[str]) -> Counter[tuple]:
        return Counter(tuple(rows[i].get(a) for a in cell_axes) for i in ids)

    # The same cells as full, each as many times per unit: the pool is full's design, only longer.
    assert {c: n * n_full for c, n in cells(profiles["pool"]).items()} == {
        c: n * n_pool for c, n in cells(profiles["full"]).items()
    }, name
    if name == "speech-grid":
        assert {rows[i]["speaker"] for i in profiles["pool"]} == {s.id for s in grid_speakers()}
        assert {rows[i]["device"] for i in profiles["pool"]} == set(devices.DEVICES)


@pytest.mark.parametrize("name", ["text-parallel", "text-paraphrase"])
def test_text_pool_loads(name: str) -> None:
    pool = load_probe_set(FIXTURES_DIR / name, profile="pool")
    assert pool.profile == "pool" and len(pool.samples) == len(_rows(name))
    # Loading without a profile still gives full, as before the pool existed.
    assert load_probe_set(FIXTURES_DIR / name).profile == "full"


def test_pool_is_a_known_full_budget_profile() -> None:
    from benchmark.claims.data import Budget

    assert "pool" in PROFILE_NAMES and "pool" in PROFILE_CHOICES and "pool" not in CI_SIZED
    assert Budget.for_profile("pool") == Budget.for_profile("full")


def test_gain_pool_adds_sentences_and_speakers() -> None:
    """speech-gain's pool is larger on both of S3's unit axes: c01-c32 x all 24 grid speakers."""
    profiles, rows = _header("speech-gain")["profiles"], _rows("speech-gain")

    def axes(ids: list[str]) -> tuple[set, set]:
        return {rows[i]["meaning_id"] for i in ids}, {rows[i]["speaker"] for i in ids}

    (full_sentences, full_speakers), (pool_sentences, pool_speakers) = (
        axes(profiles["full"]),
        axes(profiles["pool"]),
    )
    assert (len(full_sentences), len(full_speakers)) == (GAIN_N_SENTENCES, GAIN_SPEAKERS)
    assert (len(pool_sentences), len(pool_speakers)) == (GAIN_N_SENTENCES_POOL, GAIN_SPEAKERS_POOL)
    assert full_sentences < pool_sentences and full_speakers < pool_speakers
    assert full_speakers == {sp.id for sp in gain_speakers()[:GAIN_SPEAKERS]}
    assert pool_speakers == {sp.id for sp in grid_speakers()}
    # Every sentence x speaker cell has its raw and its peak-normalised clip.
    assert len(profiles["full"]) == GAIN_N_SENTENCES * GAIN_SPEAKERS * 2
    assert len(profiles["pool"]) == GAIN_N_SENTENCES_POOL * GAIN_SPEAKERS_POOL * 2
    # The full profile before the raise is its first clips (pinned in RAISED): the 8 x 8 design.
    before = profiles["full"][: GAIN_FULL_BEFORE[0] * GAIN_FULL_BEFORE[1] * 2]
    assert axes(before) == (
        {f"c{k + 1:02d}" for k in range(GAIN_FULL_BEFORE[0])},
        {sp.id for sp in gain_speakers()[: GAIN_FULL_BEFORE[1]]},
    )


def test_gain_speakers_keep_the_younger_first() -> None:
    """Raising speech-gain's speakers never reorders earlier ones: the 12 younger (ci's and the former full's)
    come first, in grid order."""
    younger = [sp.id for sp in grid_speakers() if sp.age_group == "younger"]
    ordered = [sp.id for sp in gain_speakers()]
    assert ordered[:12] == younger and sorted(ordered) == sorted(sp.id for sp in grid_speakers())
