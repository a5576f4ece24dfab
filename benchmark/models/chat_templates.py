"""Chat strings of the hub LALMs and the two templates built from them.

Kept apart from the adapters so that the native transformers adapters (``hf_lalm``) and the Ultravox
re-implementation (``ultravox``) render ``shared-suffix`` and ``bare`` from one definition.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.core.schema import Modality
from benchmark.models.base import Template
from benchmark.models.hf_common import INSTRUCTION

AUDIO_MARK = "{audio}"  # marks where the audio placeholder goes in a rendered template


@dataclass(frozen=True)
class ChatFormat:
    """Literal strings around the content. ``speech`` is the audio placeholder as the prompt spells it
    (before the processor expands it); ``suffix`` follows ``INSTRUCTION`` in ``shared-suffix``."""

    prefix: str
    speech: str
    suffix: str
    bare_prefix: str = ""
    note: str = ""


def chat_templates(name: str, chat: ChatFormat) -> dict[str, dict[Modality, Template]]:
    """``shared-suffix`` and ``bare`` for both modalities, from the chat strings."""
    shared_suffix = INSTRUCTION + chat.suffix
    out: dict[str, dict[Modality, Template]] = {"shared-suffix": {}, "bare": {}}
    for modality, content in (("text", "{text}"), ("speech", AUDIO_MARK)):
        out["shared-suffix"][modality] = Template(
            name="shared-suffix",
            modality=modality,
            prefix=chat.prefix,
            suffix=shared_suffix,
            rendered=chat.prefix + content + shared_suffix,
            note=chat.note,
        )
        out["bare"][modality] = Template(
            name="bare",
            modality=modality,
            prefix=chat.bare_prefix,
            suffix="",
            rendered=chat.bare_prefix + content,
            note="content alone",
        )
    return out
