"""The band-contrast shape: scores of labellings per layer, combined into parts, reduced to one quantity.

For each component the score (:mod:`benchmark.stats.scores`) is computed on every layer's distances, net of its
permutation null, with delete-one-unit jackknife replicates (:func:`benchmark.stats.kit.net_curve`). The columns
of a component are ``tags x (layers + token controls)``. A part is the mean of some columns minus the mean of
others (a band mean, a contrast of bands, a gap between language pairs) minus an offset; the parts are reduced
(``min``, ``max``, ``single``, ``difference``, ``ratio``, ``log_ratio``) to the quantity the rule decides.

The token-identity controls (CLAIMS.md) are the same columns computed on the token embeddings alone
(``tok_last``: the last content token's input embedding; ``tok_mean``: the mean of the content tokens'
embeddings), appended to the layers when the model has them for every selected sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmark.claims.data import Budget, ClaimData
from benchmark.claims.shapes import Measured
from benchmark.claims.spec import _REF, BAND_NAMES, BandContrast, TokenControl
from benchmark.stats import Design, distance_rows, pairwise_distances, tsne_2d
from benchmark.stats.kit import REDUCE_FUNCTIONS, Estimate, NetCurve, Reduction, apply, net_curve
from benchmark.stats.scores import ScorePlan, build_score

#: Parameters of a score that name axes of the samples (so the factors they need can be collected).
_AXIS_PARAMS = (
    "label",
    "strata",
    "cells",
    "axis",
    "groups",
    "within",
    "grid",
    "pair",
    "role",
    "permute_level",
)


@dataclass(frozen=True)
class Columns:
    """The column layout of one component: ``tags x layer_names`` (tag-major)."""

    tags: tuple[str, ...]
    layer_names: list[str]
    num_blocks: int

    def index(self, tag: str, layer_positions: list[int]) -> list[int]:
        t = self.tags.index(tag)
        return [t * len(self.layer_names) + i for i in layer_positions]

    def layers_of(self, selector: str) -> list[int]:
        """Positions in ``layer_names`` of a selector (band, named layer, ``block<i>``, control)."""
        names = self.layer_names
        first = names.index("block0")
        blocks = list(range(first, first + self.num_blocks))
        if selector in BAND_NAMES:
            edge1 = round(self.num_blocks / 3)
            edge2 = self.num_blocks - edge1
            span = {"early": blocks[:edge1], "middle": blocks[edge1:edge2], "late": blocks[edge2:]}[selector]
            return span
        if selector == "blocks":
            return blocks
        if selector == "last_block":
            return [blocks[-1]]
        if selector == "middle_block":
            return [blocks[self.num_blocks // 2]]
        if selector not in names:
            if selector in ("tok_last", "tok_mean"):
                raise ControlUnavailable(selector)
            raise ValueError(f"layer {selector!r} is not among this model's layers ({names[0]}..{names[-1]})")
        return [names.index(selector)]


class ControlUnavailable(ValueError):
    """A token control is not defined for every selected sample (e.g. speech in Whisper's decoder)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"token control {name} is not available for these samples")


def _axes_needed(measure: BandContrast) -> set[str]:
    axes = set(measure.units)
    for component in measure.components.values():
        for key in _AXIS_PARAMS:
            value = component.params.get(key)
            if isinstance(value, str):
                axes.add(value)
            elif isinstance(value, list):
                axes.update(v for v in value if isinstance(v, str))
        for key in ("query", "target"):
            axes.update(component.params.get(key, {}) or {})
    return axes


def _with_controls(data: ClaimData) -> tuple[np.ndarray, list[str]]:
    """Latents with the available token controls appended as extra layers."""
    available = data.available_controls()
    names = list(data.layers) + list(available)
    if not available:
        return np.asarray(data.latents, dtype=np.float64), names
    stacked = np.concatenate(
        [
            np.asarray(data.latents, dtype=np.float64),
            np.stack(list(available.values()), axis=1).astype(np.float64),
        ],
        axis=1,
    )
    return stacked, names


@dataclass
class ComponentResult:
    plan: ScorePlan
    curve: NetCurve
    columns: Columns


def distances(measure: BandContrast, data: ClaimData) -> tuple[np.ndarray, list[str]]:
    """Distances over the model's layers plus the available token controls, and the column layer names."""
    X, names = _with_controls(data)
    return pairwise_distances(X, metric=measure.metric), names


def compute_components(
    measure: BandContrast,
    data: ClaimData,
    budget: Budget,
    rng: np.random.Generator,
    *,
    D: np.ndarray | None = None,
    jackknife: bool = True,
) -> dict[str, ComponentResult]:
    """Every component's net curve with its jackknife replicates (aligned nulls: one seed for all).

    ``D`` may be given (distances of :func:`distances`' layout, e.g. computed cheaply by the planter)."""
    factors = data.factors(_axes_needed(measure))
    if D is None:
        D, names = distances(measure, data)
    else:
        names = list(data.layers) + list(data.available_controls())
    seed = int(rng.integers(0, 2**63 - 1))
    out = {}
    for name, component in measure.components.items():
        plan = build_score(component.score, factors, component.params)
        rows = plan.rows
        D_c = D if np.array_equal(rows, np.arange(len(data.samples))) else distance_rows(D, rows)
        unit_factors = {u: np.asarray(factors[u])[rows] for u in measure.units}
        design = Design(
            factors={**plan.factors, **unit_factors}, units=tuple(measure.units), strata=plan.strata
        )
        curve = net_curve(
            plan.statistic,
            np.ascontiguousarray(D_c),
            design,
            plan.label,
            rng=np.random.default_rng(seed),
            n_perm=budget.n_perm,
            n_perm_replicate=budget.n_perm_replicate,
            strata=plan.strata,
            permute_level=plan.permute_level,
            jackknife=jackknife,
            reads_blocks=plan.reads_blocks,
        )
        out[name] = ComponentResult(plan, curve, Columns(plan.tags, names, data.num_blocks))
    return out


def _resolve(ref: str, results: dict[str, ComponentResult]) -> tuple[str, list[int]]:
    match = _REF.match(ref)
    assert match is not None  # validated when the spec loaded
    component = match["component"] or next(iter(results))
    result = results[component]
    tag = match["tag"]
    if tag is None:
        if len(result.columns.tags) != 1:
            raise ValueError(f"{ref!r} must name one of the tags {list(result.columns.tags)}")
        tag = result.columns.tags[0]
    if tag not in result.columns.tags:
        raise ValueError(f"{ref!r}: no tag {tag!r}; the component has {list(result.columns.tags)}")
    return component, result.columns.index(tag, result.columns.layers_of(match["selector"]))


def part_estimate(
    plus: list[str], minus: list[str], offset: float, results: dict[str, ComponentResult]
) -> Estimate:
    """``mean(plus columns) - mean(minus columns) - offset`` as an Estimate (components may differ per ref)."""
    weights: dict[str, np.ndarray] = {}
    for refs, sign in ((plus, 1.0), (minus, -1.0)):
        resolved = [_resolve(r, results) for r in refs]
        total = sum(len(cols) for _, cols in resolved)
        for component, cols in resolved:
            w = weights.setdefault(component, np.zeros(results[component].curve.net.size))
            w[cols] += sign / total
    estimates = [results[c].curve.combine(w) for c, w in weights.items()]
    summed = estimates[0] if len(estimates) == 1 else apply(lambda *xs: sum(xs), *estimates)
    return apply(lambda x: x - offset, summed) if offset else summed


def _swap_selector(ref: str, control: str) -> str:
    match = _REF.match(ref)
    assert match is not None  # validated when the spec loaded
    prefix = ref[: match.start("selector")]
    return prefix + control


#: The token controls that decide, per template (CLAIMS.md): under ``bare`` the last token's input embedding and
#: the mean of the input's token embeddings; under ``shared-suffix`` the mean of the content tokens' embeddings.
#: ``tok_last`` (the last *content* token's embedding) is still computed and reported under ``shared-suffix``,
#: but it is not that template's control, so it does not decide there. A template not named here is decided
#: on both (the stricter reading).
DECIDING_CONTROLS = {"bare": ("tok_last", "tok_mean"), "shared-suffix": ("tok_mean",)}
CONTROL_NAMES = ("tok_last", "tok_mean")


def deciding_controls(template: str) -> tuple[str, ...]:
    return DECIDING_CONTROLS.get(template, CONTROL_NAMES)


def _token_control(
    control: TokenControl, results: dict[str, ComponentResult], data: ClaimData
) -> tuple[dict[str, Estimate], dict[str, float], str]:
    """The compared part on the layers and on each token-control representation, and their differences."""
    part = control.compare
    compare = part_estimate(part.plus, part.minus, part.offset, results)
    margins, values = {}, {"compared": compare.value}
    missing = []
    for name in CONTROL_NAMES:
        plus = [_swap_selector(r, name) for r in part.plus]
        minus = [_swap_selector(r, name) for r in part.minus]
        try:
            ctl = part_estimate(plus, minus, part.offset, results)
        except ControlUnavailable:
            missing.append(name)
            continue
        values[name] = ctl.value
        margins[name] = apply(np.subtract, compare, ctl)
    notes = []
    if missing:
        notes.append(
            f"{', '.join(missing)} not available: {data.control_note or 'the model gives no content span'}"
        )
    reported = [name for name in margins if name not in deciding_controls(data.template)]
    if reported:
        notes.append(f"{', '.join(reported)} reported, not deciding under {data.template} (CLAIMS.md)")
    return margins, values, "; ".join(notes)


def _tsne(data: ClaimData, layers: list[str], labels: list[str], rng: np.random.Generator) -> dict[str, Any]:
    if not layers:
        return {}
    n = len(data.samples)
    keep = np.sort(rng.choice(n, size=min(n, 300), replace=False))
    out: dict[str, Any] = {"labels": {}, "layers": {}}
    for axis in labels:
        try:
            out["labels"][axis] = data.labels(axis)[keep].tolist()
        except ValueError:
            continue
    for token in layers:
        name = {"middle": f"block{data.num_blocks // 2}", "last_block": f"block{data.num_blocks - 1}"}.get(
            token, token
        )
        if name not in data.layers:
            continue
        Y = tsne_2d(
            np.asarray(data.latents[keep, data.layers.index(name)], dtype=np.float64),
            rng=rng,
            perplexity=min(30.0, (keep.size - 1) / 3),
        )
        out["layers"][name] = np.round(Y, 3).tolist()
    return {"tsne": out}


def point_value(
    measure: BandContrast,
    data: ClaimData,
    budget: Budget,
    rng: np.random.Generator,
    D: np.ndarray | None = None,
) -> float:
    """The reduced quantity's point estimate only (no jackknife)."""
    return reduce_values(measure.reduce, point_parts(measure, data, budget, rng, D))


def point_parts(
    measure: BandContrast,
    data: ClaimData,
    budget: Budget,
    rng: np.random.Generator,
    D: np.ndarray | None = None,
) -> np.ndarray:
    """Each part's point estimate, in the spec's order (no jackknife): what the planter averages."""
    results = compute_components(measure, data, budget, rng, D=D, jackknife=False)
    parts = [part_estimate(p.plus, p.minus, p.offset, results) for p in measure.parts.values()]
    return np.array([part.value for part in parts], dtype=np.float64)


def reduce_values(kind: str, values: np.ndarray) -> float:
    """The reduction of plain part values (the same rule as :class:`Reduction` applies to estimates)."""
    if kind == "single":
        return float(values[0])
    if kind in ("min", "max"):
        return float(values.min() if kind == "min" else values.max())
    return float(REDUCE_FUNCTIONS[kind](values[0], values[1]))


def evaluate(
    measure: BandContrast,
    data: ClaimData,
    budget: Budget,
    rng: np.random.Generator,
    *,
    token_control: TokenControl | None = None,
    alpha: float = 0.05,
    figures: dict[str, list[str]] | None = None,
) -> Measured:
    """Compute the claim's reduced quantity and everything reported beside it."""
    results = compute_components(measure, data, budget, rng)
    names, parts = [], []
    for name, part in measure.parts.items():
        names.append(name)
        parts.append(part_estimate(part.plus, part.minus, part.offset, results))
    reduction = Reduction(measure.reduce, tuple(parts), tuple(names))
    numbers: dict[str, float] = {}
    for name, est in zip(names, parts, strict=True):
        low, high = est.bounds(alpha)
        numbers |= {
            f"part/{name}": est.value,
            f"part/{name}/ci_low": low,
            f"part/{name}/ci_high": high,
            f"part/{name}/se": est.se,
        }
    curves: dict[str, list[float]] = {}
    for cname, res in results.items():
        cols, net, se = res.columns, res.curve.net, res.curve.se()
        prefix = f"{cname}/" if len(results) > 1 else ""
        for t, tag in enumerate(cols.tags):
            span = slice(t * len(cols.layer_names), (t + 1) * len(cols.layer_names))
            key = f"{prefix}net/{tag}" if tag else f"{prefix}net"
            curves[key] = net[span].tolist()
            curves[f"{key}/se"] = se[span].tolist()
            for band in BAND_NAMES:
                numbers[f"{key}/{band}"] = float(net[span][cols.layers_of(band)].mean())
            for layer in (
                "emb",
                "block0",
                f"block{data.num_blocks - 1}",
                "final_norm",
                "tok_last",
                "tok_mean",
            ):
                if layer in cols.layer_names:
                    numbers[f"{key}@{layer}"] = float(net[span][cols.layer_names.index(layer)])
    margins: dict[str, Estimate] = {}
    values: dict[str, float] = {}
    note = ""
    if token_control is not None:
        margins, values, note = _token_control(token_control, results, data)
    first = next(iter(results.values()))
    figures = figures or {}
    factors = data.factors(list(measure.units))
    levels = {u: sorted(set(factors[u].astype(str).tolist())) for u in measure.units}
    payloads: dict[str, Any] = {
        "columns": {c: list(r.columns.layer_names) for c, r in results.items()},
        # Each part's jackknife replicates, so cross-model claims can pair two models unit by unit.
        "parts": {
            name: {
                "value": est.value,
                "levels": levels,
                "replicates": {u: r.tolist() for u, r in est.replicates.items()},
            }
            for name, est in zip(names, parts, strict=True)
        },
    }
    if not data.extra.get("control"):
        payloads |= _tsne(
            data, list(figures.get("tsne_layers", [])), list(figures.get("tsne_labels", [])), rng
        )
    units = ", ".join(f"{n} {u}" for u, n in first.curve.n_units.items())
    resampling = (
        f"delete-one-unit jackknife over {units} (studentised, Satterthwaite df), each replicate net of its own "
        f"permutation null ({budget.n_perm_replicate} permutations, common random numbers); chance level from "
        f"{budget.n_perm} permutations of the label within its strata; reduction {measure.reduce} over "
        f"{len(parts)} part(s){' as an intersection-union test' if measure.reduce in ('min', 'max') else ''}"
    )
    return Measured(
        reduction=reduction,
        n_units=first.curve.n_units,
        n_samples=len(data.samples),
        resampling=resampling,
        curves=curves,
        numbers={k: v for k, v in numbers.items() if np.isfinite(v)},
        payloads=payloads,
        control_margins=margins,
        deciding_controls=deciding_controls(data.template),
        control_values=values,
        control_note=note,
    )
