"""``lalm-bench lock``: resolve every hub checkpoint to its current commit and write the lock file.

Revisions are never typed by hand: an entry is ``"unresolved"`` until this runs on a machine with hub
access. Offline (``HF_HUB_OFFLINE`` set, or the hub unreachable) it fails with a message that names the
hub id it could not reach, and the lock file is left untouched: a partial lock would mix resolved and
stale entries without saying so.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark.core.errors import WeightsUnavailableError

LOCK_PATH = Path(__file__).with_name("hub_lock.json")
UNRESOLVED = "unresolved"
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


def read_lock(path: Path = LOCK_PATH) -> dict[str, str]:
    """Hub id -> revision (a 40-hex commit or ``"unresolved"``); malformed entries are an error."""
    data = json.loads(path.read_text(encoding="utf-8"))
    revisions = data.get("revisions")
    if not isinstance(revisions, dict):
        raise ValueError(f"lock file {path}: no 'revisions' mapping")
    for hub_id, rev in revisions.items():
        if rev != UNRESOLVED and not (isinstance(rev, str) and _SHA_RE.match(rev)):
            raise ValueError(
                f"lock file {path}: revision of {hub_id!r} is {rev!r}, not a 40-hex commit or 'unresolved'"
            )
    return dict(revisions)


def locked_revision(hub_id: str, path: Path = LOCK_PATH) -> str:
    """The locked revision of ``hub_id``, or ``"unresolved"`` when it is not in the lock file."""
    return read_lock(path).get(hub_id, UNRESOLVED)


def _hub_sha(hub_id: str) -> str:
    from huggingface_hub import HfApi

    info = HfApi().model_info(hub_id)
    sha = info.sha
    if not sha or not _SHA_RE.match(sha):
        raise WeightsUnavailableError(f"hub returned no commit sha for {hub_id!r} (got {sha!r})")
    return sha


def _hub_tokenizer_config(hub_id: str, revision: str) -> dict[str, Any] | None:
    """The repository's ``tokenizer_config.json`` with its ``chat_template.jinja`` (if any) as ``chat_template``."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    config: dict[str, Any] = {}
    with contextlib.suppress(EntryNotFoundError):
        config = json.loads(
            Path(hf_hub_download(hub_id, "tokenizer_config.json", revision=revision)).read_text()
        )
    with contextlib.suppress(EntryNotFoundError):
        jinja = hf_hub_download(hub_id, "chat_template.jinja", revision=revision)
        config["chat_template"] = Path(jinja).read_text(encoding="utf-8")
    return config or None


def resolve_lock(
    path: Path = LOCK_PATH,
    *,
    resolver: Callable[[str], str] = _hub_sha,
    template_fetcher: Callable[[str, str], dict[str, Any] | None] = _hub_tokenizer_config,
    copies: Path | None = None,
) -> dict[str, str]:
    """Ask the hub for every entry's current commit and its chat template, and rewrite ``path`` atomically.

    The templates are recorded as copies (``benchmark.models.template_copies``, folder ``copies``) with their
    sha256 in the lock file's ``chat_templates``. Raises ``WeightsUnavailableError`` (writing nothing) when
    offline or when any entry cannot be resolved.
    """
    from benchmark.models.template_copies import COPIES_DIR, write_copy

    if os.environ.get("HF_HUB_OFFLINE", "").strip() not in ("", "0", "false", "False"):
        raise WeightsUnavailableError(
            "lalm-bench lock needs hub access but HF_HUB_OFFLINE is set; unset it on a machine that can reach "
            "huggingface.co. The lock file was not changed."
        )
    current = read_lock(path)
    resolved: dict[str, str] = {}
    for hub_id in current:
        try:
            resolved[hub_id] = resolver(hub_id)
        except WeightsUnavailableError:
            raise
        except Exception as exc:  # network, auth (gated repos), missing repo: all stop the lock
            raise WeightsUnavailableError(
                f"could not resolve the hub commit of {hub_id!r}: {type(exc).__name__}: {exc}. "
                "The lock file was not changed (gated repos need `huggingface-cli login`)."
            ) from exc
    configs: dict[str, dict[str, Any] | None] = {}
    for hub_id, revision in resolved.items():
        try:
            configs[hub_id] = template_fetcher(hub_id, revision)
        except Exception as exc:
            raise WeightsUnavailableError(
                f"could not fetch the chat template of {hub_id!r} at {revision}: {type(exc).__name__}: {exc}. "
                "The lock file was not changed."
            ) from exc
    templates = {}
    for hub_id, config in configs.items():
        copy = write_copy(hub_id, config, copies or COPIES_DIR) if config else None
        if copy is not None:
            templates[hub_id] = copy.sha256
    data = json.loads(path.read_text(encoding="utf-8"))
    data["revisions"] = resolved
    data["chat_templates"] = templates
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)
    return resolved
