"""Chat strings of the hub LALMs and the two templates built from them.

Kept apart from the adapters so that the native transformers adapters (``hf_lalm``) and the Ultravox
re-implementation (``ultravox``) render ``shared-suffix`` and ``bare`` from one definition.

``bare`` is the paper's reading: the activation of the input's own last token. For a chat model that leaves one
choice open, which each family's ``ChatFormat.bare`` states (and each template's ``note`` repeats):

- ``"turn"``: the chat turn up to and including the input (system block and user header, then the input, no end
  of turn). Chosen for chat-tuned families, whose audio placeholder only ever occurs inside a user turn in
  training and in their own processors' prompts; the input alone would be a sequence the model never saw.
- ``"input"``: the input alone (BOS where the model has one, then the input). Chosen for base models without a
  chat format.

Either way ``bare`` ends on the input's literal last token (the adapters check it), and ``shared-suffix`` ends on
``INSTRUCTION`` plus the assistant header, identical for text and speech.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from benchmark.core.errors import UnsupportedModelError
from benchmark.core.schema import Modality
from benchmark.models.base import Template
from benchmark.models.hf_common import INSTRUCTION
from benchmark.models.template_copies import CONTENT_MARKER, PINNED_DATE

AUDIO_MARK = "{audio}"  # marks where the audio placeholder goes in a rendered template
__all__ = ["AUDIO_MARK", "CONTENT_MARKER", "PINNED_DATE", "ChatFormat", "chat_templates", "render_user_turn"]
BareReading = Literal["turn", "input"]

BARE_NOTES: dict[str, str] = {
    "turn": "bare = the chat turn up to and including the input (paper's reading for a chat-tuned family: its "
    "audio placeholder only ever occurs inside a user turn); ends on the input's last token",
    "input": "bare = the input alone (BOS where the model has one, then the input; paper's reading for a model "
    "without a chat format); ends on the input's last token",
}


@dataclass(frozen=True)
class ChatFormat:
    """Literal strings around the content. ``speech`` is the audio placeholder as the prompt spells it
    (before the processor expands it); ``suffix`` follows ``INSTRUCTION`` in ``shared-suffix``; ``bare`` names
    the family's reading of the paper's ``bare`` template (module docstring)."""

    prefix: str
    speech: str
    suffix: str
    bare_prefix: str = ""
    note: str = ""
    bare: BareReading = "input"

    def bare_start(self) -> str:
        """What precedes the content under ``bare``."""
        return self.prefix if self.bare == "turn" else self.bare_prefix


def chat_templates(name: str, chat: ChatFormat) -> dict[str, dict[Modality, Template]]:
    """``shared-suffix`` and ``bare`` for both modalities, from the chat strings."""
    shared_suffix = INSTRUCTION + chat.suffix
    bare_prefix = chat.bare_start()
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
            prefix=bare_prefix,
            suffix="",
            rendered=bare_prefix + content,
            note=BARE_NOTES[chat.bare],
        )
    return out


def render_user_turn(
    tokenizer: Any, *, chat_template: str | None = None, owner: str = "model", **template_kwargs: Any
) -> tuple[str, str]:
    """``(prefix, suffix)`` around one user message's content in ``tokenizer``'s chat template, with the
    generation prompt. ``template_kwargs`` reach the template (e.g. ``date_string=PINNED_DATE``).

    Raises ``UnsupportedModelError`` naming ``owner`` when there is no template or it drops the content."""
    template = chat_template or getattr(tokenizer, "chat_template", None)
    if not template:
        raise UnsupportedModelError(f"{owner}: the tokenizer has no chat template to render a user turn with")
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": CONTENT_MARKER}],
        tokenize=False,
        add_generation_prompt=True,
        chat_template=template,
        **template_kwargs,
    )
    prefix, found, suffix = str(rendered).partition(CONTENT_MARKER)
    if not found:
        raise UnsupportedModelError(
            f"{owner}: the chat template does not render a user message's content verbatim: {rendered!r}"
        )
    return prefix, suffix
