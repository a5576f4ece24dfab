"""Tiny random-weight builds of the newest LALMs on their REAL transformers classes, SYNTHETIC tokenizers.

Same pattern as ``tests/tiny_lalms.py``: byte-level tokenizers carrying each model's special tokens (or, for the
Mistral models, a tekken file of the real format built from mistral-common's shipped vocabulary), each model's
own processor and feature-extractor classes shrunk to 16 mel bins, 2 decoder layers of width 64. What runs is
the real model class, its processor's placeholder expansion and its audio encoder; nothing comes from the hub.

Where a real class needs a package the default install lacks only for a part this suite never feeds (Gemma 3n's
vision tower needs timm), that part is replaced by a stub that raises if it is ever called; the builder says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tests.tiny_lalms import N_MELS, synthetic_tokenizer, tiny_feature_extractor

TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 512,
}

#: ChatML as the Qwen3 family's templates render one user turn (no default system turn). SYNTHETIC copy.
QWEN3_CHAT = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _text(vocab: int, **extra: Any) -> dict[str, Any]:
    return {**TEXT, "vocab_size": vocab, **extra}


def _louder(module: torch.nn.Module, std: float = 0.2) -> None:
    """Re-draw a random audio encoder's conv and linear weights at ``std``. Why: at the default 0.02 a tiny
    encoder's content signal is ~1e-7 of its sinusoidal position signal, so distinct clips would give
    float32-identical embeddings; trained encoders are far from that regime."""
    for sub in module.modules():
        if isinstance(sub, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d)):
            torch.nn.init.normal_(sub.weight, std=std)


# ---- Qwen3-ASR ---------------------------------------------------------------------------------------------
QWEN3_ASR_TOKENS = {
    "audio_token": "<|audio_pad|>",
    "audio_bos_token": "<|audio_start|>",
    "audio_eos_token": "<|audio_end|>",
}


def tiny_qwen3_asr() -> tuple[torch.nn.Module, Any]:
    """(Qwen3ASRForConditionalGeneration, Qwen3ASRProcessor): 1-layer encoder over 1 s conv chunks."""
    from transformers import (
        Qwen3ASRConfig,
        Qwen3ASRFeatureExtractor,
        Qwen3ASRForConditionalGeneration,
        Qwen3ASRProcessor,
    )

    tok = synthetic_tokenizer(
        ["<|im_start|>", "<|im_end|>", *QWEN3_ASR_TOKENS.values(), "<asr_text>"],
        eos="<|im_end|>",
        pad="<|im_end|>",
        chat_template=QWEN3_CHAT,
        **QWEN3_ASR_TOKENS,
    )
    config = Qwen3ASRConfig(
        audio_config={
            "num_mel_bins": N_MELS,
            "encoder_layers": 1,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "d_model": 32,
            "output_dim": 64,
            "downsample_hidden_size": 16,
            "n_window": 50,
            "n_window_infer": 100,
        },
        text_config=_text(len(tok)),
        audio_token_id=tok.convert_tokens_to_ids(QWEN3_ASR_TOKENS["audio_token"]),
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    model = Qwen3ASRForConditionalGeneration(config).eval()
    processor = Qwen3ASRProcessor(
        feature_extractor=Qwen3ASRFeatureExtractor(feature_size=N_MELS),
        tokenizer=tok,
        chat_template=QWEN3_CHAT,
    )
    return model, processor


# ---- GLM-ASR -----------------------------------------------------------------------------------------------
GLM_CHAT = (
    "[gMASK]<sop>{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def tiny_glm_asr() -> tuple[torch.nn.Module, Any]:
    """(GlmAsrForConditionalGeneration, GlmAsrProcessor): Whisper features in 1 s windows, merge factor 4."""
    from transformers import (
        GlmAsrConfig,
        GlmAsrForConditionalGeneration,
        GlmAsrProcessor,
        WhisperFeatureExtractor,
    )

    tok = synthetic_tokenizer(
        [
            "[gMASK]",
            "<sop>",
            "<|user|>",
            "<|assistant|>",
            "<|begin_of_audio|>",
            "<|end_of_audio|>",
            "<|pad|>",
        ],
        eos="<|endoftext|>",
        pad="<|endoftext|>",
        chat_template=GLM_CHAT,
    )
    config = GlmAsrConfig(
        audio_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "max_position_embeddings": 128,
            "num_mel_bins": N_MELS,
        },
        text_config=_text(len(tok)),
        audio_token_id=tok.convert_tokens_to_ids("<|pad|>"),
    )
    torch.manual_seed(0)
    model = GlmAsrForConditionalGeneration(config).eval()
    # 2 s windows: 100 encoder frames per window merge into whole groups of 4, as 1500 do in the real model
    # (the processor counts tokens over the summed windows, the model per window; they agree only then).
    features = WhisperFeatureExtractor(
        feature_size=N_MELS, sampling_rate=16_000, hop_length=160, chunk_length=2
    )
    processor = GlmAsrProcessor(
        feature_extractor=features, tokenizer=tok, chat_template=GLM_CHAT, audio_token="<|pad|>"
    )
    return model, processor


# ---- Audio Flamingo 3 ----------------------------------------------------------------------------------------
def tiny_audio_flamingo_3() -> tuple[torch.nn.Module, Any]:
    """(AudioFlamingo3ForConditionalGeneration, AudioFlamingo3Processor): Whisper-style encoder + Qwen2."""
    from transformers import (
        AudioFlamingo3Config,
        AudioFlamingo3ForConditionalGeneration,
        AudioFlamingo3Processor,
    )

    from tests.tiny_lalms import QWEN_CHAT

    tok = synthetic_tokenizer(
        ["<|im_start|>", "<|im_end|>", "<sound>"], eos="<|im_end|>", pad="<|im_end|>", chat_template=QWEN_CHAT
    )
    config = AudioFlamingo3Config(
        audio_config={
            "num_mel_bins": N_MELS,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "hidden_size": 32,
            "max_source_positions": 50,
        },
        text_config=_text(len(tok), model_type="qwen2"),
        audio_token_id=tok.convert_tokens_to_ids("<sound>"),
    )
    torch.manual_seed(0)
    model = AudioFlamingo3ForConditionalGeneration(config).eval()
    processor = AudioFlamingo3Processor(
        feature_extractor=tiny_feature_extractor(), tokenizer=tok, chat_template=QWEN_CHAT
    )
    return model, processor


# ---- Qwen3-Omni (thinker) ----------------------------------------------------------------------------------
QWEN3_OMNI_TOKENS = {
    "audio_token": "<|audio_pad|>",
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "audio_bos_token": "<|audio_start|>",
    "audio_eos_token": "<|audio_end|>",
    "vision_bos_token": "<|vision_start|>",
    "vision_eos_token": "<|vision_end|>",
}


def tiny_qwen3_omni_thinker() -> tuple[torch.nn.Module, Any]:
    """(Qwen3OmniMoeThinkerForConditionalGeneration, audio-only Qwen3OmniMoeProcessor): 4 experts, top-2."""
    from transformers import (
        Qwen3OmniMoeProcessor,
        Qwen3OmniMoeThinkerConfig,
        Qwen3OmniMoeThinkerForConditionalGeneration,
        WhisperFeatureExtractor,
    )

    from benchmark.models.hf_lalm import audio_only_processor

    tok = synthetic_tokenizer(
        ["<|im_start|>", "<|im_end|>", *QWEN3_OMNI_TOKENS.values()],
        eos="<|im_end|>",
        pad="<|im_end|>",
        chat_template=QWEN3_CHAT,
        **QWEN3_OMNI_TOKENS,
    )
    ids = {name: tok.convert_tokens_to_ids(token) for name, token in QWEN3_OMNI_TOKENS.items()}
    mrope = {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "mrope_section": [2, 3, 3],
        "mrope_interleaved": True,
    }
    config = Qwen3OmniMoeThinkerConfig(
        audio_config={
            "num_mel_bins": N_MELS,
            "encoder_layers": 1,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "d_model": 32,
            "output_dim": 64,
            "downsample_hidden_size": 16,
            "n_window": 50,
            "n_window_infer": 100,
        },
        vision_config={
            "depth": 1,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "deepstack_visual_indexes": [0],
            "num_position_embeddings": 16,
        },
        text_config=_text(
            len(tok),
            rope_parameters=mrope,
            num_experts=4,
            num_experts_per_tok=2,
            moe_intermediate_size=32,
        ),
        audio_token_id=ids["audio_token"],
        image_token_id=ids["image_token"],
        video_token_id=ids["video_token"],
        audio_start_token_id=ids["audio_bos_token"],
        # read by the thinker's rope index but not a declared field in 5.24; real configs carry it
        vision_start_token_id=ids["vision_bos_token"],
    )
    torch.manual_seed(0)
    model = Qwen3OmniMoeThinkerForConditionalGeneration(config).eval()
    _louder(model.model.audio_tower)
    features = WhisperFeatureExtractor(
        feature_size=N_MELS, sampling_rate=16_000, hop_length=160, chunk_length=30
    )
    return model, audio_only_processor(Qwen3OmniMoeProcessor, features, tok, QWEN3_CHAT)


# ---- Gemma 3n ---------------------------------------------------------------------------------------------------
#: Gemma 3n's id layout, shrunk: text ids below 264, then 8 vision ids (end-of-image, image soft token), then 8
#: audio ids (end-of-audio, audio soft token), as the real 262144 / 262272 offsets lay them out.
GEMMA3N_TEXT_VOCAB = 264
GEMMA3N_SPECIALS = [
    "<bos>",
    "<eos>",
    "<pad>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_audio>",
    "<start_of_image>",
    "<unused0>",
    "<end_of_image>",
    "<image_soft_token>",
    *[f"<vision_{i}>" for i in range(6)],
    "<end_of_audio>",
    "<audio_soft_token>",
    *[f"<audio_{i}>" for i in range(6)],
]
GEMMA3N_AUDIO_TOKENS = 32  # audio soft tokens per clip, 5.1 s of audio (188, 30 s, in the real model)


class _NoVisionTower(torch.nn.Module):
    """Stands in for Gemma 3n's timm vision tower, which needs timm; no image is ever sent."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tiny Gemma 3n has no vision tower (timm is not installed); send no images")


def tiny_gemma3n() -> tuple[torch.nn.Module, Any]:
    """(Gemma3nForConditionalGeneration, Gemma3nProcessor): 1-layer USM conformer, 2 decoder layers with 4 AltUp
    streams. The vision tower alone is a stub (``_NoVisionTower``): the real one is built by timm."""
    from unittest import mock

    from transformers import (
        Gemma3nAudioFeatureExtractor,
        Gemma3nConfig,
        Gemma3nForConditionalGeneration,
        Gemma3nProcessor,
        Gemma3nVisionConfig,
    )
    from transformers.models.gemma3n import modeling_gemma3n
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    chat = (
        "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
        "{{ m['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
    )
    names = {
        "audio_token": "<audio_soft_token>",
        "boa_token": "<start_of_audio>",
        "eoa_token": "<end_of_audio>",
        "image_token": "<image_soft_token>",
        "boi_token": "<start_of_image>",
        "eoi_token": "<end_of_image>",
    }
    tok = synthetic_tokenizer(
        GEMMA3N_SPECIALS, eos="<eos>", pad="<pad>", bos="<bos>", chat_template=chat, **names
    )
    ids = {name: tok.convert_tokens_to_ids(token) for name, token in names.items()}
    assert ids["eoi_token"] == GEMMA3N_TEXT_VOCAB and ids["eoa_token"] == GEMMA3N_TEXT_VOCAB + 8, ids
    config = Gemma3nConfig(
        text_config={
            **TEXT,
            "vocab_size": GEMMA3N_TEXT_VOCAB + 16,
            "vocab_size_per_layer_input": GEMMA3N_TEXT_VOCAB,
            "hidden_size_per_layer_input": 8,
            "laurel_rank": 8,
            "num_kv_shared_layers": 0,
            "sliding_window": 128,  # wider than any tiny prompt, as 512 is for the real one
            "layer_types": ["sliding_attention", "full_attention"],
            "activation_sparsity_pattern": [0.0, 0.0],
            "altup_num_inputs": 4,
        },
        vision_config={"vocab_offset": GEMMA3N_TEXT_VOCAB, "vocab_size": 8, "hidden_size": 64},
        audio_config={
            "input_feat_size": N_MELS,
            "hidden_size": 32,
            "conf_num_attention_heads": 2,
            "conf_num_hidden_layers": 1,
            "sscp_conv_channel_size": [8, 8],
            "vocab_offset": GEMMA3N_TEXT_VOCAB + 8,
            "vocab_size": 8,
        },
        audio_soft_tokens_per_image=GEMMA3N_AUDIO_TOKENS,
        boi_token_id=ids["boi_token"],
        eoi_token_id=ids["eoi_token"],
        image_token_id=ids["image_token"],
        boa_token_id=ids["boa_token"],
        eoa_token_id=ids["eoa_token"],
        audio_token_id=ids["audio_token"],
    )
    real_from_config = modeling_gemma3n.AutoModel.from_config

    def from_config(cfg: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(cfg, Gemma3nVisionConfig):
            return _NoVisionTower()
        return real_from_config(cfg, *args, **kwargs)

    torch.manual_seed(0)
    with mock.patch.object(modeling_gemma3n.AutoModel, "from_config", from_config):
        model = Gemma3nForConditionalGeneration(config).eval()
    processor = Gemma3nProcessor(
        feature_extractor=Gemma3nAudioFeatureExtractor(feature_size=N_MELS),
        image_processor=SiglipImageProcessorPil(),
        tokenizer=tok,
        chat_template=chat,
        audio_seq_length=GEMMA3N_AUDIO_TOKENS,
    )
    return model, processor


# ---- Phi-4-multimodal -----------------------------------------------------------------------------------------
PHI4_CHAT = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def tiny_phi4_multimodal() -> tuple[torch.nn.Module, Any]:
    """(Phi4MultimodalForCausalLM, audio-only Phi4MultimodalProcessor): 1-block conformer, 2 decoder layers. The
    processor's image part is left out (its image processor needs torchvision); no image is ever sent."""
    from transformers import (
        Phi4MultimodalConfig,
        Phi4MultimodalFeatureExtractor,
        Phi4MultimodalForCausalLM,
        Phi4MultimodalProcessor,
    )

    from benchmark.models.hf_lalm import audio_only_processor

    tok = synthetic_tokenizer(
        ["<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>", "<|audio|>", "<|image|>"],
        eos="<|endoftext|>",
        pad="<|endoftext|>",
        chat_template=PHI4_CHAT,
        audio_token="<|audio|>",
        image_token="<|image|>",
    )
    config = Phi4MultimodalConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        original_max_position_embeddings=512,
        bos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 28,
            "crop_size": 28,
            "patch_size": 14,
            "image_token_id": tok.image_token_id,
        },
        audio_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_blocks": 1,
            "num_attention_heads": 2,
            "input_size": N_MELS,
            "nemo_conv_channels": 8,
            "ext_pw_out_channel": 32,
            "depthwise_separable_out_channel": 32,
            "audio_token_id": tok.audio_token_id,
        },
    )
    torch.manual_seed(0)
    model = Phi4MultimodalForCausalLM(config).eval()
    features = Phi4MultimodalFeatureExtractor(feature_size=N_MELS)
    return model, audio_only_processor(Phi4MultimodalProcessor, features, tok, PHI4_CHAT)


# ---- Mistral models with the real tokenizer format --------------------------------------------------------------
#: Voxtral's special-token ranks (0-21 as mistral-common's defaults, then the audio and streaming tokens).
MISTRAL_SPECIAL_RANKS = {
    0: "<unk>",
    1: "<s>",
    2: "</s>",
    3: "[INST]",
    4: "[/INST]",
    5: "[AVAILABLE_TOOLS]",
    6: "[/AVAILABLE_TOOLS]",
    7: "[TOOL_RESULTS]",
    8: "[/TOOL_RESULTS]",
    9: "[TOOL_CALLS]",
    10: "[IMG]",
    11: "<pad>",
    12: "[IMG_BREAK]",
    13: "[IMG_END]",
    14: "[PREFIX]",
    15: "[MIDDLE]",
    16: "[SUFFIX]",
    17: "[SYSTEM_PROMPT]",
    18: "[/SYSTEM_PROMPT]",
    19: "[TOOL_CONTENT]",
    20: "[ARGS]",
    21: "[CALL_ID]",
    24: "[AUDIO]",
    25: "[BEGIN_AUDIO]",
    34: "[TRANSCRIBE]",
    35: "[STREAMING_PAD]",
    36: "[STREAMING_WORD]",
}


def write_tekken(folder: Path, *, audio: dict[str, Any]) -> Path:
    """A ``tekken.json`` of the format Voxtral's repositories ship (version v7, explicit special tokens, an
    ``audio`` section), built from the real tekken vocabulary mistral-common ships (``tekken_240911.json``).
    SYNTHETIC only in its special-token list and audio settings, which follow Voxtral's."""
    import mistral_common

    source = Path(mistral_common.__file__).parent / "data" / "tekken_240911.json"
    data = json.loads(source.read_text(encoding="utf-8"))
    specials = [
        {"rank": rank, "token_str": MISTRAL_SPECIAL_RANKS.get(rank, f"<SPECIAL_{rank}>"), "is_control": True}
        for rank in range(max(MISTRAL_SPECIAL_RANKS) + 1)
    ]
    tekken = {
        "config": {**data["config"], "version": "v7"},
        "vocab": data["vocab"],
        "special_tokens": specials,
    }
    tekken["audio"] = audio
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tekken.json"
    path.write_text(json.dumps(tekken), encoding="utf-8")
    return path


def tiny_voxtral_mistral_common(folder: Path) -> tuple[torch.nn.Module, Any]:
    """(VoxtralForConditionalGeneration, VoxtralProcessor with mistral-common's tokenizer on a real-format tekken
    file): the audio settings match the tiny encoder (0.96 s windows of 12 embeddings, i.e. 12.5 Hz, as 30 s of
    375 for the real model)."""
    from transformers import (
        MistralCommonBackend,
        VoxtralConfig,
        VoxtralForConditionalGeneration,
        VoxtralProcessor,
    )

    write_tekken(
        folder,
        audio={
            "sampling_rate": 16_000,
            "frame_rate": 12.5,
            "audio_encoding_config": {"num_mel_bins": N_MELS, "hop_length": 160, "window_size": 400},
            "chunk_length_s": 0.96,
        },
    )
    tok = MistralCommonBackend.from_pretrained(str(folder))
    config = VoxtralConfig(
        audio_config={
            "num_mel_bins": N_MELS,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 128,
            "hidden_size": 32,
            "max_source_positions": 48,
        },
        text_config=_text(len(tok), model_type="llama"),
        audio_token_id=24,
    )
    torch.manual_seed(0)
    model = VoxtralForConditionalGeneration(config).eval()
    return model, VoxtralProcessor(feature_extractor=tiny_feature_extractor(), tokenizer=tok)


def tiny_voxtral_realtime(folder: Path) -> tuple[torch.nn.Module, Any]:
    """(VoxtralRealtimeForConditionalGeneration, VoxtralRealtimeProcessor on a real-format streaming tekken file):
    12.5 Hz audio tokens (8 mel frames each), 480 ms transcription delay, as the real model's settings."""
    from transformers import (
        MistralCommonBackend,
        VoxtralRealtimeConfig,
        VoxtralRealtimeFeatureExtractor,
        VoxtralRealtimeForConditionalGeneration,
        VoxtralRealtimeProcessor,
    )

    write_tekken(
        folder,
        audio={
            "sampling_rate": 16_000,
            "frame_rate": 12.5,
            "audio_encoding_config": {"num_mel_bins": N_MELS, "hop_length": 160, "window_size": 400},
            "transcription_format": "streaming",
            "transcription_delay_ms": 480,
            "streaming_look_ahead_ms": 2.5,
            "streaming_look_back_ms": 52.5,
            "streaming_n_left_pad_tokens": 32,
        },
    )
    tok = MistralCommonBackend.from_pretrained(str(folder))
    processor = VoxtralRealtimeProcessor(
        feature_extractor=VoxtralRealtimeFeatureExtractor(feature_size=N_MELS), tokenizer=tok
    )
    config = VoxtralRealtimeConfig(
        audio_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "num_mel_bins": N_MELS,
            "sliding_window": 750,
        },
        text_config=_text(len(tok), sliding_window=4096),
        audio_length_per_tok=8,
        default_num_delay_tokens=processor.num_delay_tokens,
        downsample_factor=4,
    )
    torch.manual_seed(0)
    model = VoxtralRealtimeForConditionalGeneration(config).eval()
    return model, processor
