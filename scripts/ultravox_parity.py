"""Ultravox parity without the hub: the official code and the re-implementation on the same tiny random weights.

The official Ultravox code (a checkout of fixie-ai/ultravox, ``ultravox/model/``) runs only on transformers 4.x, so
the two halves run in two environments and meet in files:

    # 1. transformers 4 beside the suite's venv (no other change to it)
    pip install --target /tmp/tf4 --no-deps transformers==4.52.4 tokenizers==0.21.1 huggingface_hub==0.33.0
    # 2. tokenizer, features and clip from the suite (transformers 5)
    python scripts/ultravox_parity.py prepare OUT_DIR
    # 3. the official model: random weights drawn once and saved, its processor's ids, its hidden states
    PYTHONPATH=/tmp/tf4:ULTRAVOX_CHECKOUT python scripts/ultravox_parity.py official OUT_DIR
    # 4. the re-implementation loads those weights and compares ids and every layer (parity_check)
    python scripts/ultravox_parity.py compare OUT_DIR

The tiny encoder's context is 1 s, so the 2.3 s clip goes through the official chunking (3 chunks, the last
zero-padded) exactly as a 70 s clip does through the real 30 s encoder. Measured results: README ("Ultravox").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PROMPT_CONTENT = "<|audio|>\nWhat is said?"  # the shared-suffix template's user message
DATE = "26 Jul 2024"
SECONDS = 2.3


def prepare(out: Path) -> None:
    """Tokenizer, feature extractor and clip, written by the suite (transformers 5) in a form transformers 4 reads."""
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.tiny_lalms import clip, tiny_ultravox

    _, tok, fe = tiny_ultravox("llama3")
    tok.save_pretrained(out / "tok")
    fe.save_pretrained(out / "fe")
    config_path = out / "tok" / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"  # transformers 4 has no TokenizersBackend
    config["additional_special_tokens"] = config.pop("extra_special_tokens", [])
    config.pop("backend", None)
    config_path.write_text(json.dumps(config))
    np.save(out / "clip.npy", clip(21, SECONDS))


def official(out: Path) -> None:
    """Build the official ``UltravoxModel`` (transformers 4) with random weights, save them, run its processor and
    model, save the ids and hidden states."""
    import numpy as np
    import torch
    import transformers
    from safetensors.torch import save_file
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
    from ultravox.model.ultravox_config import UltravoxConfig
    from ultravox.model.ultravox_model import UltravoxModel
    from ultravox.model.ultravox_processing import UltravoxProcessor

    tok = transformers.AutoTokenizer.from_pretrained(out / "tok")
    audio = {
        "model_type": "whisper",
        "num_mel_bins": 16,
        "encoder_layers": 1,
        "encoder_attention_heads": 2,
        "encoder_ffn_dim": 64,
        "d_model": 32,
        "max_source_positions": 50,
        "_name_or_path": "openai/whisper",
    }
    text = {
        "model_type": "llama",
        "vocab_size": len(tok),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
    }
    config = UltravoxConfig(
        audio_config=audio,
        text_config=text,
        hidden_size=64,
        stack_factor=2,
        norm_init=0.4,
        projector_act="swiglu",
        projector_ln_mid=True,
    )
    torch.manual_seed(0)
    model = UltravoxModel(config).eval().to_empty(device="cpu")  # towers are built on the meta device
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("norm.weight", "layer_norm.weight", "ln_pre.weight", "ln_mid.weight")):
                param.copy_(1 + 0.1 * torch.randn_like(param))
            elif name.endswith("bias"):
                param.normal_(std=0.02)
            else:
                param.normal_(std=0.3 if name.startswith("multi_modal_projector") else 0.05)
    model.language_model.model.rotary_emb = LlamaRotaryEmbedding(config=model.language_model.config)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    whisper_vocab = out / "whisper"
    whisper_vocab.mkdir(exist_ok=True)
    (whisper_vocab / "vocab.json").write_text(json.dumps({"<|endoftext|>": 0, "a": 1}))
    (whisper_vocab / "merges.txt").write_text("#version: 0.2\n")
    whisper_tok = transformers.WhisperTokenizer(  # the processor reads only the feature extractor
        vocab_file=str(whisper_vocab / "vocab.json"), merges_file=str(whisper_vocab / "merges.txt")
    )
    features = transformers.WhisperFeatureExtractor.from_pretrained(out / "fe")
    processor = UltravoxProcessor(
        audio_processor=transformers.WhisperProcessor(feature_extractor=features, tokenizer=whisper_tok),
        tokenizer=tok,
        stack_factor=2,
        audio_context_size=100,
    )
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": PROMPT_CONTENT}],
        add_generation_prompt=True,
        tokenize=False,
        date_string=DATE,
    )
    inputs = processor(text=prompt, audio=np.load(out / "clip.npy"), sampling_rate=16000)
    with torch.no_grad():
        result = model(**inputs, output_hidden_states=True)
    np.savez(
        out / "reference.npz",
        input_ids=inputs["input_ids"].numpy(),
        **{f"h{i}": h[0].float().numpy() for i, h in enumerate(result.hidden_states)},
    )
    print(
        f"official: transformers {transformers.__version__}, {int(inputs['audio_batch_size'][0])} audio chunks, "
        f"{inputs['input_ids'].shape[1]} ids, {len(result.hidden_states)} hidden states"
    )


def compare(out: Path) -> dict[str, float]:
    """The re-implementation (transformers 5) on the official weights: ids and every layer (``parity_check``)."""
    import numpy as np
    import torch
    from safetensors.torch import load_file

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmark.core.schema import Sample
    from benchmark.models.ultravox import VARIANTS, UltravoxAdapter, load_checkpoint, parity_check
    from tests.tiny_lalms import tiny_ultravox

    model, tok, fe = tiny_ultravox("llama3")
    load_checkpoint(
        model, load_file(out / "model.safetensors"), audio_in_checkpoint=True, text_in_checkpoint=True
    )
    adapter = UltravoxAdapter("ultravox-0.5-llama-3.2-1b", VARIANTS["ultravox-0.5-llama-3.2-1b"])
    adapter.attach(model, tok, fe, stack_factor=2, device=torch.device("cpu"), dtype=torch.float32)
    sample = Sample(id="parity", modality="speech", text="-", audio_path="clip.npy", language="en")
    errors = parity_check(adapter, out / "reference.npz", sample, np.load(out / "clip.npy"))
    print("re-implementation vs official, max relative error per layer:", json.dumps(errors))
    return errors


if __name__ == "__main__":
    step, folder = sys.argv[1], Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    {"prepare": prepare, "official": official, "compare": compare}[step](folder)
