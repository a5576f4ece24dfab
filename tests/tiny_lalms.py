"""Tiny random-weight LALMs with SYNTHETIC tokenizers and processors, for the hub-adapter tests.

Nothing here comes from the hub: a byte-level tokenizer with the models' special tokens added, Whisper
feature extractors shrunk to 1 s / 16 mel bins, and configs with 2 decoder layers, d=64. They exercise
the adapters' real code paths (processor expansion, padding, hooks), not the real checkpoints.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, WhisperFeatureExtractor

N_MELS = 16
CHUNK_S = 1  # the tiny Whisper-style encoders take 1 s windows (100 mel frames)


def synthetic_tokenizer(
    specials: list[str],
    *,
    eos: str,
    pad: str | None = None,
    bos: str | None = None,
    chat_template: str | None = None,
    **extra: str,
) -> PreTrainedTokenizerFast:
    """Byte-level tokenizer (256 byte tokens, no merges) plus the given special tokens. SYNTHETIC."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    named = {k: v for k, v in extra.items() if k.endswith("_token") and isinstance(v, str)}
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=eos, pad_token=pad, bos_token=bos)
    tok.add_special_tokens({"additional_special_tokens": specials})
    # named model tokens (e.g. audio_token) are registered as real tokenizers carry them, so they are saved with
    # the tokenizer and give ``<name>_id``; registered after the specials, which keeps the ids in list order
    tok._set_model_specific_special_tokens(named)
    for name, value in extra.items():
        if name not in named:
            setattr(tok, name, value)
    if chat_template:
        tok.chat_template = chat_template
    return tok


def tiny_feature_extractor() -> WhisperFeatureExtractor:
    return WhisperFeatureExtractor(
        feature_size=N_MELS, sampling_rate=16_000, hop_length=160, chunk_length=CHUNK_S, n_fft=400
    )


QWEN_CHAT = (
    "{% for m in messages %}{% if loop.first and m['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_qwen2_audio():
    """(model, processor) of a tiny Qwen2-Audio. SYNTHETIC tokenizer and processor."""
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor

    tok = synthetic_tokenizer(
        ["<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"],
        eos="<|im_end|>",
        pad="<|im_end|>",
        chat_template=QWEN_CHAT,
    )
    audio_id = tok.convert_tokens_to_ids("<|AUDIO|>")
    config = Qwen2AudioConfig(
        audio_config={
            "num_mel_bins": N_MELS,
            "encoder_layers": 1,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "d_model": 32,
            "max_source_positions": 50,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tok),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 512,
        },
        audio_token_index=audio_id,
    )
    torch.manual_seed(0)
    model = Qwen2AudioForConditionalGeneration(config).eval()
    processor = Qwen2AudioProcessor(
        feature_extractor=tiny_feature_extractor(), tokenizer=tok, chat_template=QWEN_CHAT
    )
    return model, processor


def clip(seed: int, seconds: float = 0.6) -> np.ndarray:
    """A deterministic synthetic 'speech' clip: a few tones plus noise, float32 at 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(16_000 * seconds)) / 16_000
    freqs = rng.uniform(120, 3000, size=3)
    wave = sum(np.sin(2 * np.pi * f * t) for f in freqs) * 0.2 + rng.normal(0, 0.05, t.shape)
    return wave.astype(np.float32)


LLAMA_SPECIALS = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]

#: SYNTHETIC copy of the Llama 3.2 chat template's logic: a default system block whose date is today's unless
#: ``date_string`` is given (3.1's template defaults it to "26 Jul 2024" instead of today).
LLAMA3_CHAT_TEMPLATE = (
    "{{- bos_token }}{%- if not date_string is defined %}{%- if strftime_now is defined %}"
    '{%- set date_string = strftime_now("%d %b %Y") %}{%- else %}{%- set date_string = "26 Jul 2024" %}'
    "{%- endif %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}{{- 'Cutting Knowledge Date: December 2023\\n' }}"
    "{{- 'Today Date: ' + date_string + '\\n\\n' }}{{- '<|eot_id|>' }}"
    "{%- for m in messages %}{{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] + "
    "'<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
QWEN3_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{{ m['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
LLM = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}


def _ultravox_backbone(backbone: str) -> tuple[torch.nn.Module, Any]:
    """(causal LM, tokenizer with its chat template) of one Ultravox backbone family. SYNTHETIC tokenizers."""
    if backbone == "llama3":
        from transformers import LlamaConfig, LlamaForCausalLM

        tok = synthetic_tokenizer(
            LLAMA_SPECIALS, eos="<|eot_id|>", bos="<|begin_of_text|>", chat_template=LLAMA3_CHAT_TEMPLATE
        )
        return LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), **LLM)).eval(), tok
    if backbone == "qwen3":
        from transformers import Qwen3Config, Qwen3ForCausalLM

        tok = synthetic_tokenizer(
            ["<|im_start|>", "<|im_end|>"], eos="<|im_end|>", chat_template=QWEN3_CHAT_TEMPLATE
        )
        return Qwen3ForCausalLM(Qwen3Config(vocab_size=len(tok), head_dim=16, **LLM)).eval(), tok
    if backbone == "gemma3":
        from transformers import Gemma3Config, Gemma3ForConditionalGeneration

        tok = synthetic_tokenizer(
            ["<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>", "<image_soft_token>", "<start_of_image>"],
            eos="<eos>",
            bos="<bos>",
            chat_template=GEMMA3_CHAT_TEMPLATE,
        )
        config = Gemma3Config(
            text_config={"vocab_size": len(tok), "head_dim": 16, "sliding_window": 128, **LLM},
            vision_config={
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "image_size": 28,
                "patch_size": 14,
            },
            mm_tokens_per_image=4,
            image_token_index=tok.convert_tokens_to_ids("<image_soft_token>"),
            boi_token_index=tok.convert_tokens_to_ids("<start_of_image>"),
        )
        return Gemma3ForConditionalGeneration(config).eval(), tok
    raise ValueError(f"no tiny Ultravox backbone {backbone!r}")


def tiny_ultravox(backbone: str = "llama3"):
    """(UltravoxLM, tokenizer, feature extractor) with random weights: a 1-layer Whisper encoder (1 s context,
    so clips over 1 s are chunked as 30 s ones are for the real model) and a 2-layer backbone of the family.
    SYNTHETIC tokenizer."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from benchmark.models.ultravox import UltravoxLM, projector_from_config

    torch.manual_seed(0)
    enc = WhisperEncoder(
        WhisperConfig(
            num_mel_bins=N_MELS,
            encoder_layers=1,
            encoder_attention_heads=2,
            encoder_ffn_dim=64,
            d_model=32,
            max_source_positions=50,
        )
    ).eval()
    llm, tok = _ultravox_backbone(backbone)
    cfg = {
        "hidden_size": 64,
        "stack_factor": 2,
        "norm_init": 0.4,
        "projector_act": "swiglu",
        "projector_ln_mid": True,
    }
    proj = projector_from_config(cfg, audio_dim=32, text_dim=64)
    for p in proj.parameters():  # random, not the constant init: distinct clips must stay distinct
        torch.nn.init.normal_(p, std=0.3)
    return UltravoxLM(enc, proj, llm).eval(), tok, tiny_feature_extractor()
