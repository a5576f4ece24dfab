"""Chat templates: the catalogue's chat strings against recorded copies of the models' own template files, the
lock step that records them, ``lalm-bench models``' verified/unverified marks, and third-party adapters through the
``lalm_bench.models`` entry point."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from benchmark.core.errors import WeightsUnavailableError
from benchmark.core.registry import Registry
from benchmark.models.catalog import MODELS, describe_models, get_adapter, register_entry_points
from benchmark.models.lock import read_lock, resolve_lock
from benchmark.models.template_copies import (
    check_against_copy,
    read_copy,
    template_status,
    write_copy,
)
from tests.tiny_lalms import LLAMA3_CHAT_TEMPLATE, QWEN3_CHAT_TEMPLATE


def _declared(name: str) -> tuple[str | None, str, str]:
    adapter = get_adapter(name)
    chat = getattr(adapter, "chat", None) or adapter.recipe.chat  # type: ignore[attr-defined]
    return adapter.spec.hub_id, chat.prefix, chat.suffix


def _lalms() -> list[str]:
    return [n for n in MODELS.names() if get_adapter(n).spec.kind == "lalm"]


@pytest.mark.parametrize("name", _lalms())
def test_catalogue_rendering_equals_every_recorded_copy(name: str) -> None:
    """Where ``lalm-bench lock`` recorded the model's own template, the catalogue's strings must be its rendering
    (``check_against_copy`` raises otherwise); entries without a copy are reported unverified (next test)."""
    hub_id, prefix, suffix = _declared(name)
    assert hub_id is not None
    if check_against_copy(hub_id, prefix, suffix):
        assert template_status(get_adapter(name).spec.family, hub_id).startswith("verified")


def test_models_marks_templates_without_a_copy_unverified() -> None:
    rows = {row["name"]: row for row in describe_models()}
    assert rows["qwen3-asr-1.7b"]["chat_template"].startswith("unverified")
    assert "verified against mistral-common" in rows["voxtral-mini-3b"]["chat_template"]
    assert rows["gemma-3-270m-q4km"]["chat_template"].startswith("no chat template")
    for name in _lalms():
        hub_id = rows[name]["hub_id"]
        if read_copy(hub_id) is None and rows[name]["family"] not in ("voxtral", "voxtral-realtime"):
            assert rows[name]["chat_template"].startswith("unverified"), name


def test_a_copy_that_disagrees_with_the_catalogue_fails(tmp_path: Path) -> None:
    """The check itself, on copies written as ``lalm-bench lock`` writes them (SYNTHETIC templates that copy the
    logic of Llama 3.2's and Qwen3's)."""
    write_copy(
        "fixie-ai/ultravox-v0_5-llama-3_2-1b",
        {"chat_template": LLAMA3_CHAT_TEMPLATE, "bos_token": "<|begin_of_text|>"},
        tmp_path,
    )
    hub_id, prefix, suffix = _declared("ultravox-0.5-llama-3.2-1b")
    assert check_against_copy(hub_id, prefix, suffix, tmp_path)  # rendered with the pinned date
    write_copy("Qwen/Qwen3-ASR-1.7B-hf", {"chat_template": QWEN3_CHAT_TEMPLATE}, tmp_path)
    hub_id, prefix, suffix = _declared("qwen3-asr-1.7b")  # declares an empty system turn, the copy has none
    with pytest.raises(ValueError, match="catalogue declares"):
        check_against_copy(hub_id, prefix, suffix, tmp_path)
    assert template_status("qwen3-asr", hub_id, tmp_path).startswith("verified against the recorded copy")
    assert not check_against_copy("nobody/none", "", "", tmp_path)


def test_a_tampered_copy_is_refused(tmp_path: Path) -> None:
    write_copy("a/b", {"chat_template": QWEN3_CHAT_TEMPLATE}, tmp_path)
    path = next(tmp_path.glob("*.json"))
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "chat_template": data["chat_template"] + " "}))
    with pytest.raises(ValueError, match="sha256"):
        read_copy("a/b", tmp_path)


def test_lock_records_each_repository_template(tmp_path: Path) -> None:
    lock = tmp_path / "hub_lock.json"
    lock.write_text(json.dumps({"revisions": {"a/with-template": "unresolved", "b/without": "unresolved"}}))
    sha = "0123456789abcdef0123456789abcdef01234567"
    configs = {"a/with-template": {"chat_template": QWEN3_CHAT_TEMPLATE}, "b/without": None}
    resolve_lock(
        lock, resolver=lambda hub_id: sha, template_fetcher=lambda h, r: configs[h], copies=tmp_path / "c"
    )
    data = json.loads(lock.read_text())
    assert read_lock(lock) == {"a/with-template": sha, "b/without": sha}
    copy = read_copy("a/with-template", tmp_path / "c")
    assert copy is not None and data["chat_templates"] == {"a/with-template": copy.sha256}

    def unreachable(hub_id: str, revision: str) -> None:
        raise ConnectionError("no route")

    before = lock.read_bytes()
    with pytest.raises(WeightsUnavailableError, match="chat template"):
        resolve_lock(lock, resolver=lambda h: sha, template_fetcher=unreachable, copies=tmp_path / "d")
    assert lock.read_bytes() == before and not (tmp_path / "d").exists()


def test_third_party_adapters_register_through_the_entry_point() -> None:
    registry: Registry[object] = Registry("model")
    entry = SimpleNamespace(name="my-lalm", value="my_package.adapters:build")
    assert register_entry_points(registry, [entry]) == ["my-lalm"]
    assert "my-lalm" in registry and registry._entries["my-lalm"] == "my_package.adapters:build"
    with pytest.raises(ValueError, match="already registered"):
        register_entry_points(registry, [entry])
