"""Tiny random-weight Voxtral, Granite Speech and Qwen2.5-Omni thinker with SYNTHETIC tokenizers/processors.

Same pattern as ``tests/tiny_lalms.py``: byte-level tokenizers with the models' special tokens, 16 mel bins,
2 decoder layers of width 64, one-layer audio encoders. Nothing comes from the hub; what is exercised is the
adapters' real code (input building, placeholder expansion, padding, per-clip encoding, hooks).
"""

from __future__ import annotations

from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from tests.tiny_lalms import N_MELS, QWEN_CHAT, synthetic_tokenizer, tiny_feature_extractor

TEXT = {
    "vocab_size": 0,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}

#: Voxtral's tekken ids for the specials the adapter uses (id 24 is hard-coded in ``VoxtralProcessor``).
VOXTRAL_SPECIALS = {
    0: "<unk>",
    1: "<s>",
    2: "</s>",
    3: "[INST]",
    4: "[/INST]",
    11: "<pad>",
    24: "[AUDIO]",
    25: "[BEGIN_AUDIO]",
}
N_RESERVED = 32  # ids below this are specials (fillers where unnamed), bytes come after, as in tekken


def _text_config(vocab: int, **extra: Any) -> dict[str, Any]:
    return {**TEXT, "vocab_size": vocab, **extra}


def voxtral_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level tokenizer whose first 32 ids are specials at Voxtral's ids. SYNTHETIC (not tekken)."""
    vocab = {VOXTRAL_SPECIALS.get(i, f"<SPECIAL_{i}>"): i for i in range(N_RESERVED)}
    for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet())):
        vocab[ch] = N_RESERVED + i
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    tok.add_special_tokens(
        {"additional_special_tokens": [v for k, v in sorted(VOXTRAL_SPECIALS.items()) if k > 4]}
    )
    return tok


def tiny_voxtral() -> tuple[torch.nn.Module, Any]:
    """(model, processor) of a tiny Voxtral: 48 encoder frames per window (96 mel frames, 0.96 s), grouped by 4
    into 12 audio embeddings, as the real model groups 1500 into 375. SYNTHETIC tokenizer."""
    from transformers import VoxtralConfig, VoxtralForConditionalGeneration, VoxtralProcessor

    tok = voxtral_tokenizer()
    config = VoxtralConfig(
        audio_config={
            "num_mel_bins": N_MELS,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 128,
            "hidden_size": 32,
            "max_source_positions": 48,
        },
        text_config=_text_config(len(tok), model_type="llama", head_dim=16),
        audio_token_id=24,
    )
    torch.manual_seed(0)
    model = VoxtralForConditionalGeneration(config).eval()
    return model, VoxtralProcessor(feature_extractor=tiny_feature_extractor(), tokenizer=tok)


GRANITE_CHAT = (
    "{% for m in messages %}<|start_of_role|>{{ m['role'] }}<|end_of_role|>{{ m['content'] }}<|end_of_text|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|start_of_role|>assistant<|end_of_role|>{% endif %}"
)


def tiny_granite_speech() -> tuple[torch.nn.Module, Any]:
    """(model, GraniteSpeechInputs) of a tiny Granite Speech: 2-layer conformer (block attention over 20
    frames), 1-layer Q-former with the real 15/5 windows. SYNTHETIC tokenizer and chat template."""
    from transformers import GraniteSpeechConfig, GraniteSpeechForConditionalGeneration

    from benchmark.models.hf_common import GraniteLogMel
    from benchmark.models.hf_families import GraniteSpeechInputs

    tok = synthetic_tokenizer(
        ["<|start_of_role|>", "<|end_of_role|>", "<|audio|>"],
        eos="<|end_of_text|>",
        pad="<|end_of_text|>",
        chat_template=GRANITE_CHAT,
    )
    config = GraniteSpeechConfig(
        encoder_config={
            "input_dim": 2 * N_MELS,
            "num_layers": 2,
            "hidden_dim": 32,
            "feedforward_mult": 2,
            "num_heads": 2,
            "dim_head": 16,
            "output_dim": 8,
            "context_size": 20,
            "max_pos_emb": 64,
            "conv_kernel_size": 5,
            "dropout": 0.0,
        },
        projector_config={
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "encoder_hidden_size": 32,
            "cross_attention_frequency": 1,
        },
        text_config=_text_config(len(tok), model_type="granite"),
        audio_token_index=tok.convert_tokens_to_ids("<|audio|>"),
        has_lora_adapter=False,
    )
    torch.manual_seed(0)
    model = GraniteSpeechForConditionalGeneration(config).eval()
    return model, GraniteSpeechInputs(tok, GraniteLogMel(n_mels=N_MELS))


OMNI_TOKENS = {
    "audio_token": "<|AUDIO|>",
    "image_token": "<|IMAGE|>",
    "video_token": "<|VIDEO|>",
    "audio_bos_token": "<|audio_bos|>",
    "audio_eos_token": "<|audio_eos|>",
    "vision_bos_token": "<|vision_bos|>",
    "vision_eos_token": "<|vision_eos|>",
}


def tiny_qwen_omni_thinker() -> tuple[torch.nn.Module, Any]:
    """(thinker, audio-only processor) of a tiny Qwen2.5-Omni. SYNTHETIC tokenizer; the tokenizer carries the
    audio/image/video token attributes the processor reads."""
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    from benchmark.models.hf_families import audio_only_omni_processor

    tok = synthetic_tokenizer(
        ["<|im_start|>", "<|im_end|>", *OMNI_TOKENS.values()],
        eos="<|im_end|>",
        pad="<|im_end|>",
        chat_template=QWEN_CHAT,
        **OMNI_TOKENS,
    )
    ids = {name: tok.convert_tokens_to_ids(token) for name, token in OMNI_TOKENS.items()}
    mrope = {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "mrope_section": [2, 3, 3],
    }  # head_dim 16 -> 8 pairs
    config = Qwen2_5OmniThinkerConfig(
        audio_config={
            "num_mel_bins": N_MELS,
            "encoder_layers": 1,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "d_model": 32,
            "max_source_positions": 50,
            "n_window": 50,
            "output_dim": 64,
        },
        vision_config={
            "depth": 1,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "fullatt_block_indexes": [0],
        },
        text_config=_text_config(len(tok), rope_parameters=mrope),
        audio_token_index=ids["audio_token"],
        image_token_index=ids["image_token"],
        video_token_index=ids["video_token"],
        audio_start_token_id=ids["audio_bos_token"],
        audio_end_token_id=ids["audio_eos_token"],
        vision_start_token_id=ids["vision_bos_token"],
    )
    torch.manual_seed(0)
    model = Qwen2_5OmniThinkerForConditionalGeneration(config).eval()
    return model, audio_only_omni_processor(tiny_feature_extractor(), tok, QWEN_CHAT)
