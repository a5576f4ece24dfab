"""Hub-adapter tests on tiny random-weight models with SYNTHETIC tokenizers and processors.

The models (2 decoder layers, d=64, 1-layer audio encoders) come from ``tests/tiny_lalms.py``; nothing is
downloaded. What is tested is the adapters' own code: prompt building, placeholder expansion, padding,
last-token positions, hook points and batch independence. Real checkpoints are checked by
``lalm-bench check`` on a GPU machine.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from benchmark.core.errors import PipelineError, UnsupportedModelError, WeightsUnavailableError
from benchmark.core.schema import Sample
from benchmark.models.base import Batch, ModelAdapter
from benchmark.models.catalog import MODELS, get_adapter
from benchmark.models.hf_common import INSTRUCTION, last_real_positions
from benchmark.models.hf_lalm import find_audio_token, find_decoder
from benchmark.models.hub_factory import build_adapter
from benchmark.models.lock import LOCK_PATH, UNRESOLVED, read_lock, resolve_lock
from tests.tiny_lalms import clip, tiny_qwen2_audio, tiny_ultravox

CPU = torch.device("cpu")
HUB_NAMES = (
    "ultravox-0.5-llama-3.2-1b",
    "ultravox-0.5-llama-3.1-8b",
    "qwen2-audio-7b",
    "qwen2-audio-7b-instruct",
    "qwen2.5-omni-7b",
    "voxtral-mini-3b",
    "granite-speech-3.3-2b",
    "phi-4-multimodal",
    "gemma-3n-e4b",
    "audio-flamingo-3",
)


def _speech(i: int) -> Sample:
    return Sample(id=f"s{i}", modality="speech", text="x", audio_path=f"{i}.wav", language="en")


def _text(i: int, text: str) -> Sample:
    return Sample(id=f"t{i}", modality="text", text=text, language="en")


def _build(kind: str) -> ModelAdapter:
    if kind == "qwen2-audio (synthetic processor)":
        model, processor = tiny_qwen2_audio()
        adapter = build_adapter("qwen2-audio-7b-instruct")
        adapter.attach(model, processor, device=CPU, dtype=torch.float32)
    else:
        model, tok, fe = tiny_ultravox()
        adapter = build_adapter("ultravox-0.5-llama-3.2-1b")
        adapter.attach(model, tok, fe, stack_factor=2, device=CPU, dtype=torch.float32)
    return adapter


KINDS = ["qwen2-audio (synthetic processor)", "ultravox (synthetic tokenizer)"]


@pytest.fixture(scope="module", params=KINDS)
def adapter(request: pytest.FixtureRequest) -> ModelAdapter:
    return _build(request.param)


def _capture(adapter: ModelAdapter, batch: Batch) -> dict[str, torch.Tensor]:
    """What the engine does: pre-hook on blocks[0] (emb), forward hooks on blocks and the final norm,
    last real token sliced inside the hook. Returns layer -> [batch, d]."""
    handles = adapter.layer_handles()
    pos = batch.last_positions
    rows = torch.arange(pos.shape[0])
    out: dict[str, torch.Tensor] = {}

    def take(name: str):
        def hook(_m: Any, args: Any, output: Any = None) -> None:
            h = output if output is not None else args[0]
            h = h[0] if isinstance(h, tuple) else h
            out[name] = h[rows, pos].detach().float().clone()

        return hook

    hs = [handles.blocks[0].register_forward_pre_hook(lambda m, a: take("emb")(m, a))]
    hs += [b.register_forward_hook(take(f"block{i}")) for i, b in enumerate(handles.blocks)]
    hs.append(handles.final_norm.register_forward_hook(take("final_norm")))
    try:
        adapter.forward(batch)
    finally:
        for h in hs:
            h.remove()
    return out


def _reference_hidden(adapter: ModelAdapter, batch: Batch) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        if hasattr(adapter, "merged_embeddings"):
            out = adapter.model.decoder(
                inputs_embeds=adapter.merged_embeddings(batch),
                attention_mask=batch.model_kwargs["attention_mask"],
                output_hidden_states=True,
                use_cache=False,
            )
        else:
            out = adapter.model(**batch.model_kwargs, output_hidden_states=True, use_cache=False)
    return out.hidden_states


def _run(adapter: ModelAdapter, samples: list[tuple[Sample, Any]], template: str = "shared-suffix"):
    items = [adapter.prepare(s, w, template) for s, w in samples]
    batch = adapter.collate(items)
    return items, batch, _capture(adapter, batch)


def test_shapes_and_template_suffix_shared(adapter: ModelAdapter) -> None:
    items, _batch, lat = _run(adapter, [(_speech(1), clip(1)), (_text(1, "Hello there."), None)])
    assert set(lat) == set(adapter.layer_names())
    assert adapter.num_blocks == 2
    for v in lat.values():
        assert v.shape == (2, 64)
    # text and speech end on the same suffix tokens
    n_suffix = 4
    a, b = (it.tensors["input_ids"][-n_suffix:] for it in items)
    assert torch.equal(a, b)
    assert items[0].last_token_id == items[1].last_token_id
    assert adapter.template("shared-suffix", "text").suffix.startswith(INSTRUCTION)
    for key in ("input_ids", "waveform", "processor_config", "template"):
        assert key in items[0].key_material
    assert items[0].audio_key == items[0].key_material["waveform"]
    assert "waveform" not in items[1].key_material


def test_placeholder_expanded_to_audio_embeddings(adapter: ModelAdapter) -> None:
    item = adapter.prepare(_speech(2), clip(2, seconds=0.45), "bare")
    ids = item.tensors["input_ids"]
    if hasattr(adapter, "merged_embeddings"):
        start, end = item.content_span
        assert (ids[start:end] == adapter.tokenizer.eos_token_id).all()
        emb = adapter.clip_embeddings(item.tensors["chunks"], torch.device("cpu"))
        assert end - start == item.tensors["n_audio_tokens"] == emb.shape[0] > 1
    else:
        n_placeholders = int((ids == adapter.audio_token_id).sum())
        lengths = item.tensors["feature_attention_mask"].sum(-1)
        _, n_embeddings = adapter.model.model.audio_tower._get_feat_extract_output_lengths(lengths)
        assert n_placeholders == int(n_embeddings) > 1


def test_last_positions_right_padded_and_left_padded(adapter: ModelAdapter) -> None:
    items = [adapter.prepare(_text(i, "a" * (3 + 5 * i)), None, "bare") for i in range(3)]
    batch = adapter.collate(items)
    assert batch.last_positions.tolist() == [it.length - 1 for it in items]
    mask = batch.model_kwargs["attention_mask"]
    assert (mask[:, 0] == 1).all()  # right padded whatever the tokenizer's default side
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1], [0, 1, 1, 0]])
    assert last_real_positions(left).tolist() == [3, 3, 2]


def test_distinct_clips_distinct_latents_same_clip_same(adapter: ModelAdapter) -> None:
    _, _, lat = _run(adapter, [(_speech(1), clip(1)), (_speech(2), clip(2)), (_speech(3), clip(1))])
    for layer in ("emb", "block0", "block1", "final_norm"):
        if layer == "emb":  # emb at the last token is the suffix token's embedding: identical by design
            continue
        assert not torch.allclose(lat[layer][0], lat[layer][1], atol=1e-5), layer
        torch.testing.assert_close(lat[layer][0], lat[layer][2], rtol=1e-5, atol=1e-6)


def test_hooks_match_output_hidden_states(adapter: ModelAdapter) -> None:
    _items, batch, lat = _run(adapter, [(_speech(1), clip(1)), (_text(1, "Short."), None)])
    hs = _reference_hidden(adapter, batch)
    rows, pos = torch.arange(2), batch.last_positions
    n = adapter.num_blocks
    assert len(hs) == n + 1
    torch.testing.assert_close(lat["emb"], hs[0][rows, pos].float())
    for i in range(n - 1):
        torch.testing.assert_close(lat[f"block{i}"], hs[i + 1][rows, pos].float())
    torch.testing.assert_close(lat["final_norm"], hs[-1][rows, pos].float())
    assert not torch.allclose(lat[f"block{n - 1}"], lat["final_norm"])


def test_batch1_equals_batch4(adapter: ModelAdapter) -> None:
    samples = [
        (_speech(1), clip(1, 0.3)),
        (_text(1, "A much longer sentence here."), None),
        (_speech(2), clip(2, 0.8)),
        (_text(2, "Hi."), None),
    ]
    _, _, together = _run(adapter, samples)
    for i, s in enumerate(samples):
        _, _, alone = _run(adapter, [s])
        for layer, value in together.items():
            torch.testing.assert_close(alone[layer][0], value[i], rtol=1e-4, atol=1e-5)


def test_naive_baseline_matches_engine_on_lalms(adapter: ModelAdapter) -> None:
    """The naive loop (full model, LM head, output_hidden_states) gives the engine's latents on LALMs too."""
    from benchmark.engine.naive import naive_forward, naive_layer_names

    samples = [(_speech(1), clip(1, 0.4)), (_text(1, "Another sentence."), None)]
    items, _, engine = _run(adapter, samples)
    names = naive_layer_names(adapter.num_blocks)
    for row, item in enumerate(items):
        naive = naive_forward(adapter, item)
        assert naive.shape[0] == len(names)
        for index, name in enumerate(names):
            torch.testing.assert_close(
                torch.from_numpy(naive[index]), engine[name][row], rtol=1e-4, atol=1e-5
            )


def test_ignored_audio_is_an_error() -> None:
    """A processor that drops the audio (lmms-eval PR #1081) must fail, not give identical latents."""
    model, processor = tiny_qwen2_audio()
    adapter = build_adapter("qwen2-audio-7b-instruct")

    class Deaf:
        def __init__(self, inner: Any) -> None:
            self.inner, self.tokenizer = inner, inner.tokenizer
            self.audio_token = inner.audio_token

        def __call__(self, text: Any, audio: Any = None, **kw: Any) -> Any:
            return self.tokenizer(text, return_tensors="pt", add_special_tokens=False)

    adapter.attach(model, Deaf(processor), device=CPU, dtype=torch.float32)
    with pytest.raises(PipelineError, match="ignored the audio"):
        adapter.prepare(_speech(1), clip(1), "shared-suffix")


def test_unexpanded_placeholder_is_caught() -> None:
    """Qwen2-Audio expands a lone placeholder itself; then positions shift and forward must fail."""
    adapter = _build(KINDS[0])
    item = adapter.prepare(_speech(1), clip(1), "bare")
    ids = item.tensors["input_ids"]
    keep = torch.ones_like(ids, dtype=torch.bool)
    audio_pos = (ids == adapter.audio_token_id).nonzero().flatten()
    keep[audio_pos[1:]] = False
    item.tensors["input_ids"] = ids[keep]
    with pytest.raises(PipelineError, match="expanded the audio placeholder"):
        adapter.forward(adapter.collate([item]))


def test_catalogue_specs_and_templates() -> None:
    assert set(HUB_NAMES) <= set(MODELS.names())
    lock = read_lock()
    for name in HUB_NAMES:
        a = get_adapter(name)
        assert a.spec.kind == "lalm" and a.spec.weights_source == f"hub:{a.spec.hub_id}"
        assert a.spec.hub_id in lock and a.spec.revision == UNRESOLVED
        for tname in ("shared-suffix", "bare"):
            assert a.template(tname, "text").suffix == a.template(tname, "speech").suffix
        assert not a.availability().available  # nothing cached here, and nothing downloaded


def test_lock_file_all_unresolved_and_offline_lock_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    data = json.loads(LOCK_PATH.read_text())
    assert data["revisions"] and all(v == UNRESOLVED for v in data["revisions"].values())
    before = LOCK_PATH.read_bytes()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match="HF_HUB_OFFLINE"):
        resolve_lock()
    monkeypatch.delenv("HF_HUB_OFFLINE")

    def unreachable(hub_id: str) -> str:
        raise ConnectionError("no route to huggingface.co")

    with pytest.raises(WeightsUnavailableError, match="could not resolve"):
        resolve_lock(resolver=unreachable)
    assert LOCK_PATH.read_bytes() == before


def test_generic_hf_offline_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    adapter = get_adapter("hf:nobody/not-a-cached-lalm")
    assert adapter.spec.weights_source == "hub:nobody/not-a-cached-lalm"
    assert not adapter.availability().available
    with pytest.raises(WeightsUnavailableError, match="nobody/not-a-cached-lalm"):
        adapter.load(CPU, torch.float32)
    with pytest.raises(UnsupportedModelError, match="owner"):
        get_adapter("hf:no-slash")


def test_generic_finders_name_what_is_missing() -> None:
    """A text-only tiny Llama (SYNTHETIC tokenizer) has a decoder but no audio placeholder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.tiny_lalms import LLAMA_SPECIALS, synthetic_tokenizer

    tok = synthetic_tokenizer(LLAMA_SPECIALS, eos="<|eot_id|>")
    llm = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
        )
    )
    assert len(find_decoder(llm).blocks) == 2
    with pytest.raises(UnsupportedModelError, match="audio_token_id"):
        find_audio_token(llm, tok)
    with pytest.raises(UnsupportedModelError, match="decoder blocks"):
        find_decoder(torch.nn.Linear(2, 2))


def test_device_map_load_places_with_accelerate_and_gives_the_same_latents(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``device_map`` reaches ``from_pretrained`` (accelerate's placement, no ``.to``); latents equal the plain load's."""
    import dataclasses

    import transformers

    model, processor = tiny_qwen2_audio()
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    cls = transformers.Qwen2AudioForConditionalGeneration
    original = cls.from_pretrained.__func__
    seen: list[object] = []

    def spy(klass: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("device_map"))
        return original(klass, *args, **kwargs)

    monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    samples = [(_speech(0), clip(0)), (_text(1, "a short line"), None)]
    out = {}
    for placement in (None, {"": "cpu"}):
        adapter = build_adapter("qwen2-audio-7b-instruct")
        adapter.recipe = dataclasses.replace(adapter.recipe, hub_id=str(tmp_path))
        adapter.device_map = placement
        adapter.load(CPU, torch.float32)
        out[placement is None] = _run(adapter, samples)[2]
    assert seen == [None, {"": "cpu"}]
    for name, plain in out[True].items():
        torch.testing.assert_close(out[False][name], plain)
