"""A within-shuffle can leave a member in place (``Shuffle.keep``): T1's calibration permutes anchor, paraphrase
and unrelated within a pair and never moves the same-words adversarial sentence into the contrast."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.claims import registry
from benchmark.claims.controls import shuffle
from benchmark.claims.spec import Shuffle
from tests.test_claims_planted import paraphrase_data


def _roles_received(keep: dict[str, list[str]], seeds: int = 40) -> dict[str, set[str]]:
    """For every role, the original roles of the rows it received over ``seeds`` shuffles."""
    data = paraphrase_data()
    roles = data.labels("pair_role").astype(str)
    received: dict[str, set[str]] = {role: set() for role in roles}
    for seed in range(seeds):
        moved = shuffle(data, Shuffle(within=["pair_id"], keep=keep), np.random.default_rng(seed))
        source = np.asarray(moved.latents)[:, 0, 0]
        origin = {float(v): i for i, v in enumerate(np.asarray(data.latents)[:, 0, 0])}
        for row, value in enumerate(source):
            j = origin[float(value)]
            assert data.labels("pair_id")[j] == data.labels("pair_id")[row], "a row left its pair"
            received[roles[row]].add(str(roles[j]))
    return received


def test_kept_rows_stay_and_the_others_are_permuted_within_their_pair() -> None:
    received = _roles_received({"pair_role": ["adversarial"]})
    assert received["adversarial"] == {"adversarial"}
    for role in ("anchor", "paraphrase", "unrelated"):
        assert received[role] == {"anchor", "paraphrase", "unrelated"}, (role, received[role])


def test_without_keep_every_role_can_receive_the_adversarial_row() -> None:
    received = _roles_received({})
    assert all("adversarial" in got for got in received.values()), received


def test_no_keep_draws_the_same_permutation_as_before() -> None:
    """Entries of claims without ``keep`` replay bit for bit: the random stream is the one a plain
    within-stratum permutation draws."""
    data = paraphrase_data()
    moved = shuffle(data, Shuffle(within=["pair_id"]), np.random.default_rng(7))
    rng = np.random.default_rng(7)
    codes = np.unique(data.labels("pair_id").astype(str), return_inverse=True)[1]
    order = np.arange(codes.size)
    for level in np.unique(codes):
        rows = np.flatnonzero(codes == level)
        order[rows] = rng.permutation(rows)
    np.testing.assert_array_equal(np.asarray(moved.latents), np.asarray(data.latents)[order])


def test_a_kept_label_the_pool_lacks_is_named() -> None:
    with pytest.raises(ValueError, match=r"pair_role has no rows labelled \['adversary'\]"):
        shuffle(
            paraphrase_data(),
            Shuffle(within=["pair_id"], keep={"pair_role": ["adversary"]}),
            np.random.default_rng(0),
        )


def test_keep_needs_a_within_shuffle() -> None:
    with pytest.raises(ValueError, match="only a within-shuffle"):
        Shuffle(named="norm_growth", keep={"pair_role": ["adversarial"]})


def test_t1_calibration_keeps_the_adversarial_in_its_role() -> None:
    assert registry.get_claim("T1-paraphrase-closer").control.shuffle.keep == {"pair_role": ["adversarial"]}


def test_a_shuffle_that_keeps_nothing_dumps_as_before() -> None:
    """Claims without ``keep`` keep their fingerprints (recorded in results and calibration entries)."""
    assert "keep" not in Shuffle(within=["pair_id"]).model_dump(mode="json")
    assert Shuffle(within=["pair_id"], keep={"pair_role": ["adversarial"]}).model_dump(mode="json")[
        "keep"
    ] == {"pair_role": ["adversarial"]}
