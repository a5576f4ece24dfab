"""Whisper's packaged ``tokenizer.json``, repaired at load, and the special tokens the prompts use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.core.errors import WeightsUnavailableError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

SOT, EOT, TRANSCRIBE, NO_TIMESTAMPS = (
    "<|startoftranscript|>",
    "<|endoftext|>",
    "<|transcribe|>",
    "<|notimestamps|>",
)

#: The first BPE merge of GPT-2/Whisper, missing from the packaged whisper-base tokenizer.json (OFFLINE.md).
FIRST_MERGE = "Ġ t"


def load_whisper_tokenizer(path: Path) -> tuple[Tokenizer, bool]:
    """Load ``tokenizer.json``, inserting the first merge when it is missing; return (tokenizer, repaired).

    Without the merge `" the"` encodes as (220, 3322) instead of 264, so every prompt with a word starting
    in "t" would be tokenised unlike OpenAI's tokenizer.
    """
    from tokenizers import Tokenizer

    data = json.loads(path.read_text(encoding="utf-8"))
    merges = data.get("model", {}).get("merges")
    if not isinstance(merges, list):
        raise WeightsUnavailableError(f"tokenizer file {path} has no BPE merges list")
    as_strings = [m if isinstance(m, str) else " ".join(m) for m in merges]
    repaired = FIRST_MERGE not in as_strings
    if repaired:
        merges.insert(0, FIRST_MERGE if isinstance(merges[0], str) else FIRST_MERGE.split(" "))
    return Tokenizer.from_str(json.dumps(data)), repaired
