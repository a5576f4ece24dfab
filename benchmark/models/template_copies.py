"""Copies of the models' own chat-template files, and whether the catalogue's chat strings match them.

A hub model's chat template lives in its repository, which this machine cannot reach. ``lalm-bench lock`` (where
the hub is reachable) records a copy of each locked repository's template here, one JSON file per hub id with
the template, the tokens it reads and the sha256 of the template text, and the sha256 in ``hub_lock.json``
(``chat_templates``). A test (``tests/test_template_copies.py``) renders every recorded copy for one user turn
and checks the catalogue declares exactly that rendering; ``lalm-bench models`` reports each entry's template as
verified (against a copy, or against mistral-common's encoder for the Mistral models) or ``unverified``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The date a chat template is rendered with where it inserts one (Llama 3.x: "Today Date: ..."). Why pinned:
#: the Llama 3.2 template inserts today's date, which would change the token ids, the cache keys and every
#: baseline daily. 26 Jul 2024 is the Llama 3.1 template's own default, so 3.1 and 3.2 render alike.
PINNED_DATE = "26 Jul 2024"
#: Marker rendered as a user message's content to split a chat template into prefix and suffix.
CONTENT_MARKER = "\x00LALM-BENCH-CONTENT\x00"

COPIES_DIR = Path(__file__).with_name("chat_template_copies")
#: families whose chat format is verified by their tokenizer library itself (tests on the real file format)
VERIFIED_BY_LIBRARY = {
    "voxtral": "verified against mistral-common's own encoding (tests/test_hf_adapters_mistral.py)",
    "voxtral-realtime": "no chat template (mistral-common transcription request)",
}


@dataclass(frozen=True)
class TemplateCopy:
    """One recorded chat template: its text, the special tokens it reads, the sha256 of the text."""

    hub_id: str
    chat_template: str
    bos_token: str | None
    eos_token: str | None
    sha256: str

    def render_user_turn(self, **kwargs: Any) -> tuple[str, str]:
        """``(prefix, suffix)`` of one user message with the generation prompt (date pinned)."""
        from transformers.utils.chat_template_utils import render_jinja_template

        rendered = render_jinja_template(
            conversations=[[{"role": "user", "content": CONTENT_MARKER}]],
            chat_template=self.chat_template,
            add_generation_prompt=True,
            bos_token=self.bos_token or "",
            eos_token=self.eos_token or "",
            date_string=PINNED_DATE,
            **kwargs,
        )
        text = rendered[0] if isinstance(rendered, tuple) else rendered
        text = text[0] if isinstance(text, list) else text
        prefix, found, suffix = str(text).partition(CONTENT_MARKER)
        if not found:
            raise ValueError(f"{self.hub_id}: its chat template does not render the user's content verbatim")
        return prefix, suffix


def copy_path(hub_id: str, folder: Path = COPIES_DIR) -> Path:
    return folder / (hub_id.replace("/", "__") + ".json")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_copy(
    hub_id: str, tokenizer_config: dict[str, Any], folder: Path = COPIES_DIR
) -> TemplateCopy | None:
    """Record the chat template of a ``tokenizer_config.json`` (or a ``chat_template.jinja`` text put under
    ``chat_template``); ``None`` when the repository has none."""
    template = tokenizer_config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    if not isinstance(template, str) or not template:
        return None

    def token(name: str) -> str | None:
        value = tokenizer_config.get(name)
        return value.get("content") if isinstance(value, dict) else value

    copy = TemplateCopy(hub_id, template, token("bos_token"), token("eos_token"), sha256_text(template))
    folder.mkdir(parents=True, exist_ok=True)
    copy_path(hub_id, folder).write_text(json.dumps(copy.__dict__, indent=1) + "\n", encoding="utf-8")
    return copy


def read_copy(hub_id: str, folder: Path = COPIES_DIR) -> TemplateCopy | None:
    """The recorded copy of ``hub_id``'s template, checked against its own sha256; ``None`` when none is recorded."""
    path = copy_path(hub_id, folder)
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    copy = TemplateCopy(**data)
    if sha256_text(copy.chat_template) != copy.sha256:
        raise ValueError(f"{path}: the template's sha256 does not match the recorded {copy.sha256}")
    return copy


def check_against_copy(hub_id: str, prefix: str, suffix: str, folder: Path = COPIES_DIR) -> bool:
    """True when a recorded copy of ``hub_id``'s template renders a user turn as ``prefix`` + content + ``suffix``;
    False when no copy is recorded; ``ValueError`` naming both renderings when they differ."""
    copy = read_copy(hub_id, folder)
    if copy is None:
        return False
    rendered = copy.render_user_turn()
    if rendered != (prefix, suffix):
        raise ValueError(
            f"{hub_id}: its recorded chat template renders a user turn as {rendered[0]!r} + content + "
            f"{rendered[1]!r}; the catalogue declares {prefix!r} + content + {suffix!r}"
        )
    return True


def template_status(family: str, hub_id: str | None, folder: Path = COPIES_DIR) -> str:
    """What ``lalm-bench models`` says of an entry's chat strings."""
    if family in VERIFIED_BY_LIBRARY:
        return VERIFIED_BY_LIBRARY[family]
    if hub_id is None:
        return "no chat template (offline weights)"
    copy = read_copy(hub_id, folder)
    if copy is not None:
        return f"verified against the recorded copy of {hub_id}'s template (sha256 {copy.sha256[:12]})"
    return (
        f"unverified: no copy of {hub_id}'s own chat template here (lalm-bench lock records one where the hub "
        "is reachable); the suffix is checked against the tokenizer's template at load"
    )
