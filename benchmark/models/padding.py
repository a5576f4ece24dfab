"""Padding token rows into one batch, on either side, with positions and content spans that follow the padding.

Adapters pad right by default. Left padding exists so that a test can show that the padding side never changes
a latent: with it, each row's positions (``position_ids``) must skip the pads, or absolute and rotary position
embeddings would see every row shifted, and content spans move by the row's pad count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from benchmark.models.base import PreparedInput

if TYPE_CHECKING:
    import torch

PaddingSide = Literal["right", "left"]
PADDING_SIDES: tuple[str, ...] = ("right", "left")


@dataclass
class PaddedRows:
    """``input_ids``/``attention_mask``/``position_ids`` ``[rows, width]``, the last real position of each row,
    and each row's content span in padded coordinates (``None`` where the item has none)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    last_positions: torch.Tensor
    content_spans: list[tuple[int, int] | None]


def pad_rows(items: list[PreparedInput], pad_id: int, side: str, *, model: str) -> PaddedRows:
    """Pad ``items``' ``input_ids`` to the longest with ``pad_id`` on ``side``; ``model`` names errors."""
    import torch

    if not items:
        raise ValueError(f"model {model!r}: collate got an empty list")
    if side not in PADDING_SIDES:
        raise ValueError(f"model {model!r}: padding side must be one of {PADDING_SIDES}, got {side!r}")
    width = max(item.length for item in items)
    input_ids = torch.full((len(items), width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    spans: list[tuple[int, int] | None] = []
    for row, item in enumerate(items):
        ids = item.tensors["input_ids"]
        if len(ids) != item.length:
            raise ValueError(
                f"model {model!r}: sample {item.sample_id!r} has {len(ids)} ids but length {item.length}"
            )
        offset = 0 if side == "right" else width - item.length
        input_ids[row, offset : offset + item.length] = torch.as_tensor(ids, dtype=torch.long)
        mask[row, offset : offset + item.length] = 1
        span = item.content_span
        spans.append(None if span is None else (span[0] + offset, span[1] + offset))
    position_ids = (mask.cumsum(dim=1) - 1).clamp(min=0)
    last_positions = (
        mask.sum(dim=1) - 1 if side == "right" else torch.full((len(items),), width - 1, dtype=torch.long)
    )
    return PaddedRows(input_ids, mask, position_ids, last_positions, spans)
