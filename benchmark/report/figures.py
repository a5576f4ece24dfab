"""Figures drawn from what records store (matplotlib, Agg, PNG bytes); nothing here computes a statistic.

Payload conventions the figures read (all optional; a claim without them still gets its effect plot):

``measurement.curves`` and ``payloads["columns"]``
    per-layer series (``net``, ``net/se``; components prefixed), read through :mod:`benchmark.report.curves`:
    drawn on relative depth (the paper's Figure 4) so models of different depth overlay, one colour per model
    and one line style per template, with a band of +-1 standard error, and the token-control columns
    (``tok_last``, ``tok_mean``) as horizontal markers right of ``final_norm``. The points behind each curves
    figure travel with it (``RenderedFigure.points``) and are written beside the PNG as CSV and parquet.
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
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from benchmark.claims.record import ClaimRecord
from benchmark.report._common import claim_ids, rule_threshold, slug, template_order
from benchmark.report.compare import Comparison
from benchmark.report.curves import CONTROL_COLUMNS, CurvePoint, curve_points

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
    points: tuple[CurvePoint, ...] = ()


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


#: Line style and marker of each template (the paper's reading solid).
TEMPLATE_STYLES: dict[str, tuple[str, str]] = {"bare": ("-", "o"), "shared-suffix": ("--", "s")}
#: x positions of the token-control markers, right of final_norm (relative depth 1).
CONTROL_X: dict[str, float] = {"tok_last": 1.1, "tok_mean": 1.2}


def _style(template: str) -> tuple[str, str]:
    return TEMPLATE_STYLES.get(template, (":", "^"))


def _row_label(record: ClaimRecord) -> str:
    variant = "" if record.primary_variant or not record.variant else f",{record.variant}"
    return f"{record.model} [{record.template}{variant}]"


def effect_figure(claim_id: str, records: Sequence[ClaimRecord]) -> RenderedFigure:
    """Each record's effect with its interval beside the rule's margin (marker: template, hollow: secondary
    variant), and the token controls' values of the compared part (hollow diamond: compared, x: tok_last,
    +: tok_mean); records without an effect show their verdict."""
    fig = Figure(figsize=(6.8, 0.6 + 0.42 * len(records)), layout="constrained")
    ax = fig.add_subplot()
    for y, record in enumerate(records):
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
        marker = _style(record.template)[1]
        ax.plot([m.ci_low, m.ci_high], [y, y], color=colour, linewidth=2, marker="|", markersize=12)
        ax.plot(
            [m.effect],
            [y],
            marker=marker,
            color=colour,
            linestyle="none",
            markerfacecolor=colour if record.primary_variant else "white",
        )
        controls = m.token_controls
        for name, symbol in (("compared", "D"), ("tok_last", "x"), ("tok_mean", "+")):
            if name in controls:  # drawn just above the row, so they never hide the effect's marker
                ax.plot(
                    [controls[name]],
                    [y + 0.28],
                    marker=symbol,
                    color="black",
                    linestyle="none",
                    markerfacecolor="none",
                    markersize=5,
                )
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
    ax.set_yticks(range(len(records)), [_row_label(r) for r in records], fontsize=7)
    ax.set_ylim(-0.7, len(records) - 0.3)
    ax.set_xlabel(
        "effect and interval; above each row, token controls (◇ compared, x tok_last, + tok_mean)",
        fontsize=8,
    )
    return RenderedFigure(
        f"{slug(claim_id)}-effect.png",
        claim_id,
        "effect",
        "Effect and interval per model and template (o bare, s shared-suffix; hollow: secondary probe variant), "
        "coloured by verdict; dashed: the rule's margin; black: the compared part on token embeddings.",
        _png(fig),
    )


def _depth_axis(ax: Any, with_controls: bool) -> None:
    ax.set_xlabel("relative depth (emb = 0, final_norm = 1)", fontsize=8)
    if with_controls:
        ax.set_xlim(-0.02, max(CONTROL_X.values()) + 0.07)
        ax.axvline(1.05, color="#bdbdbd", linewidth=0.6)
        ticks = [0.0, 0.25, 0.5, 0.75, 1.0, *CONTROL_X.values()]
        labels = ["0", ".25", ".5", ".75", "1", *(name.replace("_", "\n") for name in CONTROL_X)]
        ax.set_xticks(ticks, labels, fontsize=7)
    else:
        ax.set_xlim(-0.02, 1.02)


def _draw_series(ax: Any, points: Sequence[CurvePoint], colour: Any, label: str) -> None:
    """One record's series: the line over layers with its +-se band, control columns as horizontal markers."""
    style = _style(points[0].template)[0]
    layers = [p for p in points if not p.control]
    depth = np.array([p.depth for p in layers])
    value = np.array([p.value for p in layers])
    se = np.array([p.se for p in layers])
    ax.plot(depth, value, linestyle=style, color=colour, marker=".", markersize=3, label=label)
    if np.isfinite(se).any():
        ax.fill_between(depth, value - se, value + se, color=colour, alpha=0.12, linewidth=0)
    for p in points:
        if p.control:
            ax.plot(
                [CONTROL_X[p.column]],
                [p.value],
                marker="_",
                markersize=14,
                markeredgewidth=2.5,
                color=colour,
                linestyle="none",
                alpha=1.0 if style == "-" else 0.6,
            )


def curves_figure(claim_id: str, records: Sequence[ClaimRecord], *, title: str = "") -> RenderedFigure | None:
    """Per-layer curves, one panel per series, each model in one colour with one line style per template
    (solid: bare, dashed: shared-suffix) on relative depth; token controls as horizontal markers."""
    primary = [r for r in records if r.primary_variant and r.measurement is not None and r.measurement.curves]
    points = curve_points(primary)
    if not points:
        return None
    series = list(dict.fromkeys(p.series for p in points))
    models = list(dict.fromkeys(p.model for p in points))
    colours = dict(zip(models, _palette(len(models)), strict=True))
    columns = min(len(series), 3)
    rows = -(-len(series) // columns)
    fig = Figure(figsize=(max(3.9 * columns, 6.0), 2.9 * rows + 0.9), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    with_controls = any(p.control for p in points)
    for ax, name in zip(axes, series, strict=False):
        for record in sorted(primary, key=lambda r: (r.model, template_order(r.template))):
            mine = [
                p
                for p in points
                if p.series == name
                and p.model == record.model
                and p.template == record.template
                and p.revision == record.revision
            ]
            if mine:
                layers = sum(not p.control for p in mine)
                _draw_series(
                    ax, mine, colours[record.model], f"{record.model} [{record.template}] ({layers} layers)"
                )
        ax.set_title(name, fontsize=9)
        _depth_axis(ax, with_controls)
    for ax in axes[len(series) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=6)
    if title:
        fig.suptitle(textwrap.fill(title, width=int(55 * max(columns, 1.5))), fontsize=9)
    controls = " and ".join(c for c in CONTROL_COLUMNS if any(p.column == c for p in points))
    return RenderedFigure(
        f"{slug(claim_id)}-curves.png",
        claim_id,
        "curves",
        "Per-layer values on relative depth, one colour per model, solid: bare, dashed: shared-suffix; band: "
        "+-1 standard error"
        + (f"; right of final_norm: the token controls {controls} (horizontal markers)" if controls else "")
        + ". Data: the CSV and parquet files of the same name.",
        _png(fig),
        points=tuple(curve_points([r for r in records if r.measurement is not None])),
    )


def compare_figure(
    claim_id: str, comparison: Comparison, records: Sequence[ClaimRecord]
) -> RenderedFigure | None:
    """Deltas against the reference with their intervals (one row per model and template), and the curves of
    the primary template overlaid with the reference's (black)."""
    deltas = [d for d in comparison.deltas if d.claim_id == claim_id]
    if not deltas:
        return None
    primary = next((d for d in deltas if d.primary), deltas[0])
    reference = comparison.reference_records.get((claim_id, primary.template, primary.variant))
    shown = [
        r
        for r in records
        if r.template == primary.template
        and r.variant == primary.variant
        and r.model != comparison.reference_model
    ]
    points = curve_points([reference, *shown] if reference is not None else shown)
    series = list(dict.fromkeys(p.series for p in points))[:2]
    fig = Figure(figsize=(3.9 * (1 + len(series)), 0.8 + max(2.4, 0.45 * len(deltas))), layout="constrained")
    axes = fig.subplots(1, 1 + len(series), squeeze=False).ravel()
    ax = axes[0]
    for y, delta in enumerate(deltas):
        colour = "#c62828" if delta.excludes_zero else "#455a64"
        _interval(ax, y, delta.delta, delta.ci_low, delta.ci_high, colour, _style(delta.template)[1])
    ax.axvline(0.0, color="black", linewidth=0.5)
    ax.set_yticks(range(len(deltas)), [f"{d.model} [{d.template}]" for d in deltas], fontsize=7)
    ax.set_ylim(-0.7, len(deltas) - 0.3)
    ax.set_xlabel(f"effect - effect({comparison.reference_model})", fontsize=8)
    models = [m for m in dict.fromkeys(p.model for p in points) if m != comparison.reference_model]
    colours = dict(zip(models, _palette(len(models)), strict=True)) | {comparison.reference_model: "black"}
    for ax, name in zip(axes[1:], series, strict=False):
        for model in [comparison.reference_model, *models]:
            mine = [p for p in points if p.series == name and p.model == model]
            if mine:
                suffix = " (reference)" if model == comparison.reference_model else ""
                _draw_series(ax, mine, colours[model], f"{model}{suffix}")
        ax.set_title(f"{name} [{primary.template}]", fontsize=9)
        _depth_axis(ax, any(p.control for p in points))
        ax.legend(fontsize=6)
    return RenderedFigure(
        f"{slug(claim_id)}-compare.png",
        claim_id,
        "compare",
        f"Release comparison against {comparison.target}: deltas with intervals (red: excludes 0; o bare, "
        f"s shared-suffix) and the {primary.template} curves overlaid with the reference's (black).",
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
    """Every figure of every claim, keyed by claim id, in display order. t-SNE panels and dendrograms are drawn
    for each model's primary template and variant only (the other template's are in its record)."""
    out: dict[str, list[RenderedFigure]] = {}
    for claim_id in claim_ids(records):
        group = sorted(
            (r for r in records if r.claim_id == claim_id),
            key=lambda r: (r.model, r.revision, template_order(r.template), not r.primary_variant),
        )
        figures = [effect_figure(claim_id, group), curves_figure(claim_id, group, title=group[0].title)]
        if comparison is not None:
            figures.append(compare_figure(claim_id, comparison, group))
        for record in group:
            if record.primary_template and record.primary_variant:
                figures.append(tsne_figure(record))
                figures.append(dendrogram_figure(record))
        out[claim_id] = [f for f in figures if f is not None]
    return out
