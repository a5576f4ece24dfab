"""Figures drawn from what records store (matplotlib, Agg, PNG bytes); nothing here computes a statistic.

Payload conventions the figures read (all optional; a claim without them still gets its effect plot):

``measurement.curves``
    ``{series: [value per layer]}``, e.g. ``{"language": [...], "meaning": [...]}``; a series ``X`` with
    ``X.lo`` and ``X.hi`` beside it is drawn with that band. Drawn on relative depth (the paper's Figure 4;
    Figure 12 for the modality-separation claims) so models of different depth overlay.
``payloads["layers"]``
    layer names of the curves (``emb``, ``block0``.., ``final_norm``), which place them on relative depth.
``payloads["tsne"]``
    ``{"labels": {axis: [label per point]}, "layers": {layer: [[x, y] per point]}}``: one row of panels per
    labelling, one column per layer (Figures 3, 6, 8, 10, 11).
``payloads["dendrogram"]``
    ``{"labels": [label per leaf], layer: scipy linkage [n-1, 4], ...}``: Figure 13c.
any ``{"rows", "cols", "values"}`` dict in ``payloads`` (also one level down, e.g. ``table2/<layer>``)
    a distance or separability table (Tables 1 and 2), rendered as a table by the writers, titled by its key.
``payloads["effect_draws"]``
    resample draws of the effect, used by the release comparison.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from benchmark.claims.record import ClaimRecord
from benchmark.report._common import claim_ids, layer_depths, rule_threshold, slug
from benchmark.report.compare import Comparison

DPI = 80
MAX_TSNE_LAYERS = 6
VERDICT_COLOURS = {
    "holds": "#2e7d32",
    "fails": "#c62828",
    "inconclusive": "#f9a825",
    "error": "#6a1b9a",
    "n/a": "#9e9e9e",
}


@dataclass(frozen=True)
class RenderedFigure:
    """One PNG and what it shows; ``name`` is its file name beside the Markdown report."""

    name: str
    claim_id: str
    kind: str
    caption: str
    png: bytes
    model: str | None = None


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _palette(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _legend_handles(colours: dict[str, Any], limit: int = 20) -> list[Line2D]:
    """Proxy artists for a categorical legend (no empty scatter collections to draw)."""
    return [
        Line2D([], [], marker="o", linestyle="none", color=colour, label=level, markersize=4)
        for level, colour in list(colours.items())[:limit]
    ]


def _interval(ax: Any, y: float, point: float, low: float, high: float, colour: Any, marker: str) -> None:
    """A point and its interval drawn as given (a point outside its stored interval stays visible as such)."""
    ax.plot([low, high], [y, y], color=colour, linewidth=2, marker="|", markersize=12, markeredgewidth=2)
    ax.plot([point], [y], marker=marker, color=colour, linestyle="none")


def effect_figure(claim_id: str, records: Sequence[ClaimRecord]) -> RenderedFigure:
    """Each model's effect with its interval beside the rule's margin; models without one show their verdict."""
    fig = Figure(figsize=(6.4, 0.5 + 0.45 * len(records)), layout="constrained")
    ax = fig.add_subplot()
    labels = []
    for y, record in enumerate(records):
        labels.append(f"{record.model}@{record.revision[:8]}")
        colour = VERDICT_COLOURS.get(record.verdict, "black")
        m = record.measurement
        if m is None:
            ax.text(
                0.5,
                y,
                record.verdict,
                transform=ax.get_yaxis_transform(),
                ha="center",
                va="center",
                color=colour,
            )
            continue
        _interval(ax, y, m.effect, m.ci_low, m.ci_high, colour, "o")
        if m.token_control is not None:
            ax.plot([m.token_control], [y], marker="x", color="black", linestyle="none")
    threshold = rule_threshold(records[0])
    if threshold:
        ax.axvline(threshold[1], color="grey", linestyle="--", linewidth=1)
        ax.text(
            threshold[1],
            1.0,
            f" {threshold[0]}={threshold[1]:g}",
            transform=ax.get_xaxis_transform(),
            va="bottom",
            fontsize=8,
            color="grey",
        )
    ax.axvline(0.0, color="black", linewidth=0.5)
    ax.set_yticks(range(len(records)), labels, fontsize=8)
    ax.set_ylim(-0.7, len(records) - 0.3)
    ax.set_xlabel("effect (net of the null); x: token-identity control", fontsize=8)
    return RenderedFigure(
        f"{slug(claim_id)}-effect.png",
        claim_id,
        "effect",
        "Primary effect and interval per model, coloured by verdict; dashed: the rule's margin.",
        _png(fig),
    )


def _series(curves: dict[str, list[float]]) -> list[str]:
    return [name for name in curves if not name.endswith((".lo", ".hi"))]


def curves_figure(claim_id: str, records: Sequence[ClaimRecord], *, title: str = "") -> RenderedFigure | None:
    """Per-layer curves, one panel per series (label), models overlaid on relative depth (Figure 4 / 12)."""
    with_curves = [r for r in records if r.measurement is not None and r.measurement.curves]
    if not with_curves:
        return None
    series = list(dict.fromkeys(name for r in with_curves for name in _series(r.measurement.curves)))
    columns = min(len(series), 3)
    rows = -(-len(series) // columns)
    fig = Figure(figsize=(3.6 * columns, 2.8 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    colours = _palette(len(with_curves))
    for ax, name in zip(axes, series, strict=False):
        for colour, record in zip(colours, with_curves, strict=True):
            curves = record.measurement.curves  # type: ignore[union-attr]
            if name not in curves:
                continue
            values = np.asarray(curves[name], dtype=float)
            depth = layer_depths(record.measurement.payloads.get("layers"), values.size)  # type: ignore[union-attr]
            ax.plot(depth, values, marker=".", color=colour, label=f"{record.model} ({values.size} layers)")
            if f"{name}.lo" in curves and f"{name}.hi" in curves:
                ax.fill_between(depth, curves[f"{name}.lo"], curves[f"{name}.hi"], color=colour, alpha=0.2)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("relative depth (emb = 0, final_norm = 1)", fontsize=8)
        ax.set_xlim(0, 1)
    for ax in axes[len(series) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return RenderedFigure(
        f"{slug(claim_id)}-curves.png",
        claim_id,
        "curves",
        "Per-layer values by series on a relative-depth axis, one line per model.",
        _png(fig),
    )


def compare_figure(
    claim_id: str, comparison: Comparison, records: Sequence[ClaimRecord]
) -> RenderedFigure | None:
    """Deltas against the reference with their intervals, and both models' curves overlaid (reference dashed)."""
    deltas = [d for d in comparison.deltas if d.claim_id == claim_id]
    if not deltas:
        return None
    reference = comparison.reference_records.get(claim_id)
    by_model = {r.model: r for r in records}
    ref_curves = reference.measurement.curves if reference and reference.measurement else {}
    series = _series(ref_curves)
    fig = Figure(
        figsize=(3.8 * (1 + min(len(series), 2)), 0.8 + max(2.4, 0.5 * len(deltas))), layout="constrained"
    )
    axes = fig.subplots(1, 1 + min(len(series), 2), squeeze=False).ravel()
    ax = axes[0]
    for y, delta in enumerate(deltas):
        colour = "#c62828" if delta.excludes_zero else "#455a64"
        _interval(ax, y, delta.delta, delta.ci_low, delta.ci_high, colour, "s")
    ax.axvline(0.0, color="black", linewidth=0.5)
    ax.set_yticks(range(len(deltas)), [d.model for d in deltas], fontsize=8)
    ax.set_ylim(-0.7, len(deltas) - 0.3)
    ax.set_xlabel(f"effect - effect({comparison.reference_model})", fontsize=8)
    colours = _palette(len(deltas))
    for ax, name in zip(axes[1:], series, strict=False):
        values = np.asarray(ref_curves[name], dtype=float)
        depth = layer_depths(reference.measurement.payloads.get("layers"), values.size)  # type: ignore[union-attr]
        ax.plot(
            depth, values, color="black", linestyle="--", label=f"{comparison.reference_model} (reference)"
        )
        for colour, delta in zip(colours, deltas, strict=True):
            record = by_model.get(delta.model)
            if record is None or record.measurement is None or name not in record.measurement.curves:
                continue
            other = np.asarray(record.measurement.curves[name], dtype=float)
            ax.plot(
                layer_depths(record.measurement.payloads.get("layers"), other.size),
                other,
                color=colour,
                label=f"{delta.model}: delta {delta.delta:+.3f} [{delta.ci_low:+.3f}, {delta.ci_high:+.3f}]",
            )
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("relative depth", fontsize=8)
        ax.legend(fontsize=6)
    return RenderedFigure(
        f"{slug(claim_id)}-compare.png",
        claim_id,
        "compare",
        f"Release comparison against {comparison.target}: deltas with intervals (red: "
        "excludes 0) and the curves overlaid.",
        _png(fig),
    )


def _labelings(tsne: dict[str, Any]) -> dict[str, list[str]]:
    labels = tsne.get("labels", {})
    if isinstance(labels, dict):
        return {str(axis): [str(x) for x in values] for axis, values in labels.items()}
    return {"label": [str(x) for x in labels]}


def tsne_figure(record: ClaimRecord) -> RenderedFigure | None:
    """t-SNE panels across layers, one row per labelling (e.g. language, meaning), coloured by label."""
    tsne = record.measurement.payloads.get("tsne") if record.measurement else None
    if not isinstance(tsne, dict) or not isinstance(tsne.get("layers"), dict) or not tsne["layers"]:
        return None
    names = list(tsne["layers"])
    if len(names) > MAX_TSNE_LAYERS:  # evenly spaced layers, always keeping the first and the last
        keep = np.unique(np.linspace(0, len(names) - 1, MAX_TSNE_LAYERS).round().astype(int))
        names = [names[i] for i in keep]
    coords = [np.asarray(tsne["layers"][name], dtype=float).reshape(-1, 2) for name in names]
    labelings = _labelings(tsne)
    fig = Figure(figsize=(2.3 * len(coords) + 1.4, 2.3 * len(labelings) + 0.3), layout="constrained")
    axes = fig.subplots(len(labelings), len(coords), squeeze=False)
    for row, (axis, labels) in enumerate(labelings.items()):
        levels = list(dict.fromkeys(labels))
        colours = dict(zip(levels, _palette(len(levels)), strict=True))
        point_colours = np.asarray([colours[label] for label in labels])
        for col, (xy, name) in enumerate(zip(coords, names, strict=True)):
            ax = axes[row, col]
            if len(xy) == len(point_colours):
                ax.scatter(
                    xy[:, 0], xy[:, 1], s=10, c=point_colours
                )  # one call per panel keeps drawing cheap
            else:
                ax.text(
                    0.5, 0.5, f"{len(xy)} points, {len(labels)} labels", transform=ax.transAxes, ha="center"
                )
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(name if row == 0 else "", fontsize=8)
            if col == 0:
                ax.set_ylabel(axis, fontsize=8)
        axes[row, -1].legend(
            handles=_legend_handles(colours), fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5)
        )
    return RenderedFigure(
        f"{slug(record.claim_id)}-tsne-{slug(record.model)}.png",
        record.claim_id,
        "tsne",
        f"t-SNE of {record.model} across layers, one row per labelling (figures only, never a verdict).",
        _png(fig),
        record.model,
    )


def _trees(record: ClaimRecord) -> list[tuple[str, np.ndarray, list[str]]]:
    """(layer, linkage, leaf labels) from ``payloads["dendrogram"] = {"labels": [...], layer: Z, ...}``."""
    payload = record.measurement.payloads.get("dendrogram") if record.measurement else None
    if not isinstance(payload, dict):
        return []
    labels = [str(x) for x in payload.get("labels", [])]
    trees = []
    for layer, matrix in payload.items():
        if layer == "labels" or not isinstance(matrix, list) or not matrix:
            continue
        Z = np.asarray(matrix, dtype=float)
        leaves = labels if len(labels) == Z.shape[0] + 1 else [str(i) for i in range(Z.shape[0] + 1)]
        trees.append((str(layer), Z, leaves))
    return trees


def dendrogram_figure(record: ClaimRecord) -> RenderedFigure | None:
    """Stored average-linkage trees, leaves coloured by label (Figure 13c)."""
    trees = _trees(record)
    if not trees:
        return None
    from scipy.cluster import hierarchy

    fig = Figure(figsize=(4.2 * len(trees), 3.2), layout="constrained")
    axes = fig.subplots(1, len(trees), squeeze=False).ravel()
    for ax, (layer, Z, labels) in zip(axes, trees, strict=True):
        tree = hierarchy.dendrogram(
            Z, no_plot=True, labels=labels
        )  # layout of the stored tree, no clustering
        for xs, ys in zip(tree["icoord"], tree["dcoord"], strict=True):
            ax.plot(xs, ys, color="#37474f", linewidth=0.8)
        colours = dict(zip(dict.fromkeys(labels), _palette(len(set(labels))), strict=True))
        leaf_x = 5 + 10 * np.arange(len(tree["ivl"]))
        ax.scatter(leaf_x, np.zeros(leaf_x.size), c=[colours[label] for label in tree["ivl"]], s=12, zorder=3)
        ax.set_xticks([])
        ax.set_title(layer, fontsize=9)
        ax.legend(handles=_legend_handles(colours), fontsize=6)
    return RenderedFigure(
        f"{slug(record.claim_id)}-dendrogram-{slug(record.model)}.png",
        record.claim_id,
        "dendrogram",
        f"Average-linkage dendrograms of {record.model}, leaves coloured by label.",
        _png(fig),
        record.model,
    )


def render_figures(
    records: Sequence[ClaimRecord], comparison: Comparison | None = None
) -> dict[str, list[RenderedFigure]]:
    """Every figure of every claim, keyed by claim id, in display order."""
    out: dict[str, list[RenderedFigure]] = {}
    for claim_id in claim_ids(records):
        group = sorted((r for r in records if r.claim_id == claim_id), key=lambda r: (r.model, r.revision))
        figures = [effect_figure(claim_id, group)]
        figures.append(curves_figure(claim_id, group, title=group[0].title))
        if comparison is not None:
            figures.append(compare_figure(claim_id, comparison, group))
        for record in group:
            figures.append(tsne_figure(record))
            figures.append(dendrogram_figure(record))
        out[claim_id] = [f for f in figures if f is not None]
    return out
