"""CTranslate2 Whisper checkpoint -> ``transformers.WhisperForConditionalGeneration`` (float32).

The config is built from the checkpoint's own shapes, and every tensor is mapped by name (layout facts in
shared/OFFLINE.md); a missing, unexpected or misshapen tensor is an error that names it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from benchmark.core.errors import PipelineError, WeightsUnavailableError
from benchmark.models.ct2_reader import CT2Checkpoint

if TYPE_CHECKING:
    from transformers import WhisperForConditionalGeneration


def _count_layers(variables: dict[str, np.ndarray], stack: str) -> int:
    pattern = re.compile(rf"^{stack}/layer_(\d+)/")
    indices = {int(m.group(1)) for name in variables if (m := pattern.match(name))}
    if indices != set(range(len(indices))) or not indices:
        raise WeightsUnavailableError(f"CTranslate2 Whisper checkpoint: {stack} layers are {sorted(indices)}")
    return len(indices)


def whisper_from_ct2(checkpoint: CT2Checkpoint, token_ids: dict[str, int]) -> WhisperForConditionalGeneration:
    """Build a float32 ``WhisperForConditionalGeneration`` holding the checkpoint's weights.

    ``token_ids`` gives the ids of ``<|endoftext|>`` and ``<|startoftranscript|>`` (they differ between the
    multilingual and the English-only vocabularies).
    """
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    if checkpoint.spec_name != "WhisperSpec":
        raise WeightsUnavailableError(
            f"CTranslate2 checkpoint is a {checkpoint.spec_name}, not a WhisperSpec"
        )
    v = checkpoint.variables
    quantised = [name for name in v if name.endswith("weight_scale")]
    if quantised:
        raise WeightsUnavailableError(
            f"CTranslate2 Whisper checkpoint is int8-quantised ({quantised[0]}); only float checkpoints are read"
        )
    embeddings = v["decoder/embeddings/weight"]
    vocab_size, d_model = embeddings.shape
    config = WhisperConfig(
        vocab_size=int(vocab_size),
        num_mel_bins=int(v["encoder/conv1/weight"].shape[1]),
        d_model=int(d_model),
        encoder_layers=_count_layers(v, "encoder"),
        decoder_layers=_count_layers(v, "decoder"),
        encoder_attention_heads=int(v["encoder/num_heads"]),
        decoder_attention_heads=int(v["decoder/num_heads"]),
        encoder_ffn_dim=int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(v["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(v["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(v["decoder/position_encodings/encodings"].shape[0]),
        activation_function="gelu",
        pad_token_id=token_ids["eot"],
        bos_token_id=token_ids["eot"],
        eos_token_id=token_ids["eot"],
        decoder_start_token_id=token_ids["sot"],
        tie_word_embeddings=True,
    )

    state: dict[str, np.ndarray] = {}

    def linear(hf: str, ct2: str, *, bias: bool = True) -> None:
        state[f"{hf}.weight"] = v[f"{ct2}/weight"]
        if bias:
            state[f"{hf}.bias"] = v[f"{ct2}/bias"]

    def norm(hf: str, ct2: str) -> None:
        state[f"{hf}.weight"] = v[f"{ct2}/gamma"]
        state[f"{hf}.bias"] = v[f"{ct2}/beta"]

    def fused_self_attention(hf: str, ct2: str) -> None:
        # linear_0 is q, k, v stacked along the output dimension; HF's k_proj has no bias.
        weight, bias = np.split(v[f"{ct2}/linear_0/weight"], 3), np.split(v[f"{ct2}/linear_0/bias"], 3)
        for index, proj in enumerate(("q_proj", "k_proj", "v_proj")):
            state[f"{hf}.{proj}.weight"] = weight[index]
            if proj != "k_proj":
                state[f"{hf}.{proj}.bias"] = bias[index]
        linear(f"{hf}.out_proj", f"{ct2}/linear_1")

    for stack in ("encoder", "decoder"):
        for i in range(getattr(config, f"{stack}_layers")):
            hf, ct2 = f"model.{stack}.layers.{i}", f"{stack}/layer_{i}"
            fused_self_attention(f"{hf}.self_attn", f"{ct2}/self_attention")
            norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
            linear(f"{hf}.fc1", f"{ct2}/ffn/linear_0")
            linear(f"{hf}.fc2", f"{ct2}/ffn/linear_1")
            norm(f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm")
            if stack == "decoder":
                linear(f"{hf}.encoder_attn.q_proj", f"{ct2}/attention/linear_0")
                key, value = np.split(v[f"{ct2}/attention/linear_1/weight"], 2)
                _, value_bias = np.split(v[f"{ct2}/attention/linear_1/bias"], 2)
                state[f"{hf}.encoder_attn.k_proj.weight"] = key
                state[f"{hf}.encoder_attn.v_proj.weight"] = value
                state[f"{hf}.encoder_attn.v_proj.bias"] = value_bias
                linear(f"{hf}.encoder_attn.out_proj", f"{ct2}/attention/linear_2")
                norm(f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm")
        state[f"model.{stack}.embed_positions.weight"] = v[f"{stack}/position_encodings/encodings"]
        norm(f"model.{stack}.layer_norm", f"{stack}/layer_norm")
    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    state["model.decoder.embed_tokens.weight"] = embeddings
    state["proj_out.weight"] = embeddings

    model = WhisperForConditionalGeneration(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise PipelineError(
            f"CTranslate2 -> transformers Whisper mapping: missing {missing}, unexpected {unexpected}"
        )
    tensors = {}
    for name, array in state.items():
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise PipelineError(
                f"CTranslate2 -> transformers Whisper mapping: {name} has shape {tuple(tensor.shape)}, "
                f"the model expects {tuple(expected[name].shape)}"
            )
        tensors[name] = tensor
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model
