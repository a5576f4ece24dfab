"""The per-layer curves records store, as one long table: what the figures draw and what users plot themselves.

Why a module of its own: the figures and the CSV/parquet files beside the report must show the same numbers, so
both read the rows built here. A record's ``measurement.curves`` holds one list per series (``net``,
``net/se``; a multi-component claim prefixes the component, ``language/net``; Q1 stores ``<metric>/<label>/
blocks``); ``payloads["columns"]`` names each component's columns, where the token controls ``tok_last`` and
``tok_mean`` may follow ``final_norm``. Control columns are not layers: they get no depth and are flagged, so a
figure draws them as markers beside the curve instead of as its last points.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmark.claims.record import ClaimRecord

#: Column names of the token-identity controls (CLAIMS.md), appended after ``final_norm`` when available.
CONTROL_COLUMNS: tuple[str, ...] = ("tok_last", "tok_mean")
SE_SUFFIX = "/se"


@dataclass(frozen=True)
class CurvePoint:
    """One value of one series of one record at one column (a layer or a token control)."""

    claim_id: str
    claim_version: int
    model: str
    revision: str
    profile: str
    template: str
    variant: str | None
    primary_template: bool
    primary_variant: bool
    series: str
    column: str
    control: bool
    depth: float
    value: float
    se: float


def relative_depth(layers: Sequence[str]) -> list[float]:
    """``emb`` at 0, ``block i`` at (i + 1) / (L + 1), ``final_norm`` at 1 (the paper's Figure 4 axis), so models
    of different depth overlay. Control columns get NaN; unnamed columns are spread evenly over the rest."""
    blocks = [int(m.group(1)) for name in layers if (m := re.fullmatch(r"block(\d+)", name))]
    depth = max(blocks) + 1 if blocks else 0
    plain = [name for name in layers if name not in CONTROL_COLUMNS]
    out = []
    for name in layers:
        match = re.fullmatch(r"block(\d+)", name)
        if name in CONTROL_COLUMNS:
            out.append(math.nan)
        elif name == "emb":
            out.append(0.0)
        elif name == "final_norm":
            out.append(1.0)
        elif match:
            out.append((int(match.group(1)) + 1) / (depth + 1))
        else:
            out.append(plain.index(name) / max(len(plain) - 1, 1))
    return out


def _component(series: str, columns: dict[str, list[str]]) -> str | None:
    """The component whose columns a series runs over: the series' first path element when it names one, else
    the only component."""
    head = series.split("/", 1)[0]
    if head in columns:
        return head
    return next(iter(columns)) if len(columns) == 1 else None


def series_columns(record: ClaimRecord, series: str, n: int) -> list[str]:
    """Column names of a series of ``n`` values: ``payloads["columns"]`` when it fits (repeated per tag),
    ``block0..`` for Q1's ``.../blocks`` series, else generic positions ``c0..``."""
    payloads = record.measurement.payloads if record.measurement else {}
    columns = payloads.get("columns")
    if isinstance(columns, dict) and columns:
        component = _component(series, {str(k): list(v) for k, v in columns.items()})
        names = [str(x) for x in columns.get(component, [])] if component else []
        if names and n == len(names):
            return names
    layers = payloads.get("layers")
    if isinstance(layers, list) and len(layers) == n:
        return [str(x) for x in layers]
    if series.endswith("/blocks"):
        return [f"block{i}" for i in range(n)]
    return [f"c{i}" for i in range(n)]


def value_series(record: ClaimRecord) -> list[str]:
    """The series a record draws: every curve that is not a standard error or an interval edge."""
    curves = record.measurement.curves if record.measurement else {}
    return [name for name in curves if not name.endswith((SE_SUFFIX, ".lo", ".hi"))]


def curve_points(records: Iterable[ClaimRecord]) -> list[CurvePoint]:
    """Every stored per-layer value of every record, with its column, depth and standard error (NaN if none)."""
    points = []
    for record in records:
        if record.measurement is None:
            continue
        curves = record.measurement.curves
        for series in value_series(record):
            values = [float(v) for v in curves[series]]
            se = [float(v) for v in curves.get(series + SE_SUFFIX, [])]
            se = se if len(se) == len(values) else [math.nan] * len(values)
            names = series_columns(record, series, len(values))
            for name, depth, value, error in zip(names, relative_depth(names), values, se, strict=True):
                points.append(
                    CurvePoint(
                        claim_id=record.claim_id,
                        claim_version=record.claim_version,
                        model=record.model,
                        revision=record.revision,
                        profile=record.profile,
                        template=record.template,
                        variant=record.variant,
                        primary_template=record.primary_template,
                        primary_variant=record.primary_variant,
                        series=series,
                        column=name,
                        control=name in CONTROL_COLUMNS,
                        depth=depth,
                        value=value,
                        se=error,
                    )
                )
    return points


def write_tables(points: Sequence[CurvePoint], stem: Path) -> list[Path]:
    """``<stem>.csv`` and ``<stem>.parquet`` of the points (one row per value); returns both paths.

    NaN (no depth for a control column, no standard error) is an empty CSV field and a NaN in parquet.
    """
    import pandas as pd

    frame = pd.DataFrame([asdict(p) for p in points], columns=list(CurvePoint.__dataclass_fields__))
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv, parquet = stem.with_suffix(".csv"), stem.with_suffix(".parquet")
    frame.to_csv(csv, index=False, float_format="%.9g")
    frame.to_parquet(parquet, index=False, engine="pyarrow")
    return [csv, parquet]
