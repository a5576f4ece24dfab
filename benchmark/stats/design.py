"""The design of a probe set: crossed and nested factors, resampling units, permutation strata.

Probe sets are crossed designs (meaning x language; sentence x speaker x device), so samples are not independent:
all translations of one meaning share its content. Uncertainty must come from resampling the *top-level units*
(meanings, sentences, speakers), and nulls from permuting labels *within strata* (e.g. gender within accent).

Resampling: the units are left out one level at a time (:mod:`benchmark.stats.kit`), never duplicated: a
duplicated point inside a distance matrix sits at distance 0 from its copy, and silhouettes and retrieval become
spuriously perfect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._checks import check_positive_int, check_rng, encode


def _combine(columns: Sequence[np.ndarray]) -> np.ndarray:
    """Integer codes of the combinations of several factors (one code per distinct tuple)."""
    if not columns:
        raise ValueError("need at least one factor to combine")
    stacked = np.stack([encode(c)[0] for c in columns], axis=1)
    return np.unique(stacked, axis=0, return_inverse=True)[1].reshape(-1).astype(np.int64)


def permutation_indices(
    strata: np.ndarray | None, n_perm: int, *, rng: np.random.Generator, n: int | None = None
) -> np.ndarray:
    """Index arrays ``[n_perm, n]``: ``perm[p, i]`` is the sample whose label position ``i`` receives.

    Each row permutes positions within every stratum only (``strata=None``: one stratum of ``n`` samples).
    All rows are drawn at once: random keys, sorted by (stratum, key).
    """
    rng = check_rng(rng)
    n_perm = check_positive_int(n_perm, name="n_perm")
    if strata is None:
        if n is None:
            raise ValueError("give strata or n")
        s = np.zeros(check_positive_int(n, name="n"), dtype=np.int64)
    else:
        s = encode(strata, n, name="strata")[0]
    order0 = np.argsort(s, kind="stable")
    keys = rng.random((n_perm, s.size)) + s[None, :]
    order = np.argsort(keys, axis=1)
    perm = np.empty_like(order)
    perm[:, order0] = order
    return perm


def permute_within(
    labels: np.ndarray, strata: np.ndarray | None, n_perm: int, *, rng: np.random.Generator
) -> np.ndarray:
    """``n_perm`` permutations of ``labels [n]`` within ``strata [n]`` (``None``: unrestricted): ``[n_perm, n]``.

    Label counts within every stratum are preserved in every row.
    """
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels must be 1-D; got shape {lab.shape}")
    return lab[permutation_indices(strata, n_perm, rng=rng, n=lab.shape[0])]


@dataclass(frozen=True)
class Design:
    """Factors of a probe set, its resampling units and its default permutation strata.

    Parameters
    ----------
    factors : mapping name -> array [n]
        One label per sample for every factor (e.g. ``meaning``, ``language``, ``speaker``, ``device``).
    units : tuple of factor names
        Top-level resampling units. One name (meanings) or several crossed ones (sentences and speakers).
    strata : tuple of factor names
        Default permutation strata: labels are permuted within the combinations of these factors.
    nested : mapping inner -> outer
        Declared nestings (speaker within accent), checked: each inner level lies in one outer level.
    """

    factors: Mapping[str, np.ndarray]
    units: tuple[str, ...]
    strata: tuple[str, ...] = ()
    nested: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.factors:
            raise ValueError("Design.factors is empty")
        lengths = {name: np.asarray(v).shape for name, v in self.factors.items()}
        if any(len(s) != 1 for s in lengths.values()) or len({s[0] for s in lengths.values()}) != 1:
            raise ValueError(f"Design.factors must be 1-D arrays of one length; got shapes {lengths}")
        object.__setattr__(self, "factors", {k: np.asarray(v) for k, v in self.factors.items()})
        object.__setattr__(self, "units", tuple(self.units))
        object.__setattr__(self, "strata", tuple(self.strata))
        for role, names in (
            ("units", self.units),
            ("strata", self.strata),
            ("nested", (*self.nested, *self.nested.values())),
        ):
            unknown = [x for x in names if x not in self.factors]
            if unknown:
                raise ValueError(
                    f"Design.{role} names unknown factors {unknown}; known: {sorted(self.factors)}"
                )
        if not self.units:
            raise ValueError("Design.units must name at least one factor")
        for inner, outer in self.nested.items():
            if not self.is_nested(inner, outer):
                raise ValueError(
                    f"factor {inner!r} is declared nested in {outer!r} but a level of it spans several {outer!r} levels"
                )

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(next(iter(self.factors.values())).shape[0])

    def codes(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Integer codes ``[n]`` and levels of one factor."""
        if name not in self.factors:
            raise KeyError(f"unknown factor {name!r}; known: {sorted(self.factors)}")
        return encode(self.factors[name], name=name)

    def strata_codes(self, strata: Sequence[str] | None = None) -> np.ndarray | None:
        """Codes ``[n]`` of the combinations of ``strata`` (default: the design's); ``None`` if no strata."""
        names = self.strata if strata is None else tuple(strata)
        unknown = [x for x in names if x not in self.factors]
        if unknown:
            raise ValueError(f"strata names unknown factors {unknown}; known: {sorted(self.factors)}")
        return _combine([self.factors[x] for x in names]) if names else None

    def is_nested(self, inner: str, outer: str) -> bool:
        """Whether every level of ``inner`` occurs within a single level of ``outer``."""
        ci, co = self.codes(inner)[0], self.codes(outer)[0]
        pairs = np.unique(np.stack([ci, co], axis=1), axis=0)
        return bool(np.unique(pairs[:, 0]).size == pairs.shape[0])

    def permute(
        self, label: str, n_perm: int, *, rng: np.random.Generator, strata: Sequence[str] | None = None
    ) -> np.ndarray:
        """Permuted integer codes ``[n_perm, n]`` of factor ``label`` within ``strata`` (default: the design's)."""
        codes = self.codes(label)[0]
        return codes[permutation_indices(self.strata_codes(strata), n_perm, rng=rng, n=self.n)]
