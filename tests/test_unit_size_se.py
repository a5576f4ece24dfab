"""The design strings and draws of ``scripts/unit_size_se.py``: the sizing diagnostic that chose speech-voices'
raised full profile (the recipe's VOICES_N_SENTENCES)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "unit_size_se.py"
_SPEC = importlib.util.spec_from_file_location("unit_size_se", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
unit_size_se = importlib.util.module_from_spec(_SPEC)
sys.modules["unit_size_se"] = unit_size_se  # its dataclass looks its module up there
_SPEC.loader.exec_module(unit_size_se)


class _Pool:
    """The two things a draw reads from a pool: its rows and a label per row."""

    def __init__(self, **axes: list[str]) -> None:
        self._axes = axes
        self.samples = list(range(len(next(iter(axes.values())))))

    def labels(self, axis: str) -> list[str]:
        return self._axes[axis]


def _pool() -> _Pool:
    meanings = [f"c{k:02d}" for k in range(1, 7) for _ in range(3)]
    devices = ["clean", "telephone", "noisy"] * 6
    return _Pool(meaning_id=meanings, device=devices)


def test_design_text_parses_counts_and_restrictions() -> None:
    design = unit_size_se.parse_design("meaning_id=4:device=clean,telephone")
    assert design.draw == {"meaning_id": 4} and design.keep == {"device": ("clean", "telephone")}


@pytest.mark.parametrize("bad", ["meaning_id", "meaning_id=", "=4"])
def test_a_malformed_design_names_itself(bad: str) -> None:
    with pytest.raises(SystemExit, match="--design"):
        unit_size_se.parse_design(bad)


def test_a_draw_takes_n_levels_and_only_the_kept_ones() -> None:
    pool = _pool()
    mask = unit_size_se.sample_mask(
        pool, unit_size_se.parse_design("meaning_id=4:device=clean,telephone"), np.random.default_rng(0)
    )
    meanings = {pool.labels("meaning_id")[i] for i in np.flatnonzero(mask)}
    devices = {pool.labels("device")[i] for i in np.flatnonzero(mask)}
    assert len(meanings) == 4 and devices == {"clean", "telephone"} and mask.sum() == 8


@pytest.mark.parametrize(
    ("design", "message"), [("meaning_id=7", "the pool has 6 levels"), ("device=far_field", "no level")]
)
def test_a_design_the_pool_cannot_give_is_refused_by_name(design: str, message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        unit_size_se.sample_mask(_pool(), unit_size_se.parse_design(design), np.random.default_rng(0))
