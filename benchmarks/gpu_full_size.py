"""Full-size random-weight LALMs on one GPU: the engine against the naive baseline (performance issue, item 4).

    python benchmarks/gpu_full_size.py --probes .gpu/crossmodal --out reports/gpu   # on a CUDA machine
    python benchmarks/gpu_full_size.py --scale tiny --device cpu --probes crossmodal  # the same path, tiny shapes

Two models with their published shapes and RANDOM weights (no hub is reachable where this runs):

- ``qwen2-audio-7b``: Qwen2-Audio-7B, a Whisper-large-v3-shaped audio encoder and the Qwen2-7B decoder;
- ``ultravox-0.5-llama-3.1-8b``: Ultravox 0.5, a Whisper-large-v3-turbo-shaped encoder, the v0.5 projector
  and the Llama-3.1-8B decoder.

Tokenizers and processors are SYNTHETIC (byte-level tokens plus the models' special tokens, real 128-bin
Whisper features over the 30-s window): a text is about four times as many tokens as with the real
tokenizer, which every figure carries as a label. The inputs are real: texts and eSpeak clips of a shipped
probe set.

Per model, in interleaved rounds (median of ``--rounds``), with the same weights: the engine
(``benchmark.engine.extract``: bf16, batch size from free memory, no LM head, last tokens hooked) and the naive
baseline (``benchmark.engine.naive``: one input at a time, float32, the full model with its LM head and
``output_hidden_states``). Reported: inputs/s, real tokens/s, achieved FLOP/s (2 x parameters used per
token x real tokens, plus 2 x encoder parameters x 1500 frames and the encoder's attention per clip) as a
share of a bf16 8192^3 matmul measured in the same run, peak GPU memory above the loaded weights against
the engine's printed estimate, and the engine-vs-naive relative difference (bf16 against float32).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from tiny_lalms import LLAMA3_CHAT_TEMPLATE, LLAMA_SPECIALS, QWEN_CHAT, synthetic_tokenizer  # noqa: E402

from benchmark.core.schema import ProbeSet  # noqa: E402
from benchmark.engine.extract import extract_latents, prepare_samples  # noqa: E402
from benchmark.engine.naive import common_layers, naive_extract  # noqa: E402
from benchmark.engine.scale import FULL_SIZE_SHAPES  # noqa: E402
from benchmark.models.base import EncoderCache, ModelAdapter  # noqa: E402
from benchmark.probes.catalog import resolve_probes  # noqa: E402

ENCODER_FRAMES = 1500  # Whisper encoders always see the 30-s window (3000 mel frames, stride 2)

#: Published shapes. ``tiny`` keeps every code path with small sizes, for a CPU check of this script.
SHAPES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "whisper_large_encoder": {
            "num_mel_bins": 128,
            "encoder_layers": 32,
            "encoder_attention_heads": 20,
            "encoder_ffn_dim": 5120,
            "d_model": 1280,
            "max_source_positions": 1500,
        },
        "qwen2_7b": dict(FULL_SIZE_SHAPES["Qwen/Qwen2-Audio-7B"]),  # one definition of the decoder shapes
        "llama_3_1_8b": {
            k: v for k, v in FULL_SIZE_SHAPES["meta-llama/Llama-3.1-8B"].items() if k != "model_type"
        },
        "ultravox_projector": {
            "hidden_size": 4096,
            "stack_factor": 8,
            "norm_init": 0.4,
            "projector_act": "swiglu",
            "projector_ln_mid": True,
        },
    },
    "tiny": {
        "whisper_large_encoder": {
            "num_mel_bins": 128,
            "encoder_layers": 2,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "d_model": 32,
            "max_source_positions": 1500,
        },
        "qwen2_7b": {
            "model_type": "qwen2",
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "vocab_size": 1024,
            "max_position_embeddings": 8192,
            "rms_norm_eps": 1e-5,
        },
        "llama_3_1_8b": {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": 1024,
            "max_position_embeddings": 8192,
            "rms_norm_eps": 1e-5,
        },
        "ultravox_projector": {
            "hidden_size": 64,
            "stack_factor": 8,
            "norm_init": 0.4,
            "projector_act": "swiglu",
            "projector_ln_mid": True,
        },
    },
}


def _feature_extractor() -> Any:
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16_000, hop_length=160, chunk_length=30, n_fft=400
    )


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_qwen2_audio(scale: str, device: torch.device) -> tuple[ModelAdapter, torch.nn.Module, Callable]:
    """Random-weight Qwen2-Audio-7B in bf16 on ``device``, its adapter, and how to attach a copy."""
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor

    from benchmark.models.hub_factory import build_adapter

    shapes = SHAPES[scale]
    tok = synthetic_tokenizer(
        ["<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"],
        eos="<|im_end|>",
        pad="<|im_end|>",
        chat_template=QWEN_CHAT,
    )
    config = Qwen2AudioConfig(
        audio_config=dict(shapes["whisper_large_encoder"]),
        text_config=dict(shapes["qwen2_7b"]),
        audio_token_index=tok.convert_tokens_to_ids("<|AUDIO|>"),
    )
    processor = Qwen2AudioProcessor(
        feature_extractor=_feature_extractor(), tokenizer=tok, chat_template=QWEN_CHAT
    )
    torch.manual_seed(0)
    with _default_dtype(torch.bfloat16), device:
        model = Qwen2AudioForConditionalGeneration(config).eval()
    adapter = build_adapter("qwen2-audio-7b")

    def attach(target: torch.nn.Module, dtype: torch.dtype) -> None:
        adapter.attach(target, processor, device=device, dtype=dtype)

    return adapter, model, attach


def build_ultravox_8b(scale: str, device: torch.device) -> tuple[ModelAdapter, torch.nn.Module, Callable]:
    """Random-weight Ultravox 0.5 on Llama-3.1-8B in bf16 on ``device``, its adapter, and how to attach a copy."""
    from transformers import LlamaConfig, LlamaForCausalLM, WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from benchmark.models.ultravox import UltravoxLM, build_ultravox, projector_from_config

    shapes = SHAPES[scale]
    tok = synthetic_tokenizer(
        LLAMA_SPECIALS, eos="<|eot_id|>", bos="<|begin_of_text|>", chat_template=LLAMA3_CHAT_TEMPLATE
    )
    torch.manual_seed(0)
    with _default_dtype(torch.bfloat16), device:
        encoder = WhisperEncoder(WhisperConfig(**shapes["whisper_large_encoder"]))
        llm = LlamaForCausalLM(LlamaConfig(**shapes["llama_3_1_8b"]))
        projector = projector_from_config(
            shapes["ultravox_projector"], audio_dim=encoder.config.d_model, text_dim=llm.config.hidden_size
        )
        for parameter in projector.parameters():  # random, not the constant norm init: clips must differ
            torch.nn.init.normal_(parameter, std=0.02)
        model = UltravoxLM(encoder, projector, llm).eval()
    adapter = build_ultravox("ultravox-0.5-llama-3.1-8b")
    feature_extractor = _feature_extractor()
    stack = int(shapes["ultravox_projector"]["stack_factor"])

    def attach(target: torch.nn.Module, dtype: torch.dtype) -> None:
        adapter.attach(target, tok, feature_extractor, stack_factor=stack, device=device, dtype=dtype)

    return adapter, model, attach


BUILDERS = {"qwen2-audio-7b": build_qwen2_audio, "ultravox-0.5-llama-3.1-8b": build_ultravox_8b}


def choose_inputs(probes: ProbeSet, texts: int, clips: int) -> ProbeSet:
    """The first ``texts`` text samples and ``clips`` distinct clips of the set, in probe-set order."""
    chosen, seen, counts = [], set(), {"text": 0, "speech": 0}
    limits = {"text": texts, "speech": clips}
    for sample in probes.samples:
        if counts[sample.modality] >= limits[sample.modality]:
            continue
        if sample.modality == "speech":
            if sample.audio_sha256 in seen:
                continue
            seen.add(sample.audio_sha256)
        chosen.append(sample)
        counts[sample.modality] += 1
    if counts != limits:
        raise ValueError(f"probe set {probes.name!r} has {counts} usable inputs; asked {limits}")
    return probes.model_copy(update={"samples": chosen})


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device, size: int = 8192, repeats: int = 10) -> float:
    """bf16 FLOP/s of a ``size``^3 matmul on ``device`` (mean of ``repeats`` after three warm-ups)."""
    if device.type != "cuda":
        size = 512
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started)


def _linear_parameters(module: torch.nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))


def encoder_frames(prepared: list[Any]) -> list[int]:
    """Encoder positions per encoder call: the whole 30-s window per clip (Qwen2-Audio pads to it), or per
    chunk only the chunk's real frames where the adapter encodes unpadded chunks (Ultravox: ``chunks`` of
    ``(features, real mel frames, tokens)``, conv stride 2). Attention is quadratic in each call's length, so
    a clip longer than one chunk counts as several calls."""
    frames = []
    for item in prepared:
        if item.modality != "speech":
            continue
        chunks = item.tensors.get("chunks")
        if chunks is None:
            frames.append(ENCODER_FRAMES)
        else:
            frames.extend((int(real) - 1) // 2 + 1 for _features, real, _tokens in chunks)
    return frames


def _part(model: torch.nn.Module, name: str) -> torch.nn.Module | None:
    """A multimodal part by attribute name, on the model or one level down: transformers 5 moved Qwen2-Audio's
    ``audio_tower`` and ``multi_modal_projector`` under ``model.model`` (the earlier lookup on the top level
    found no encoder, so its FLOPs were never counted); Ultravox keeps them on the top level."""
    for owner in (model, getattr(model, "model", None)):
        part = getattr(owner, name, None) if owner is not None else None
        if isinstance(part, torch.nn.Module):
            return part
    return None


def projector_positions(encoder: torch.nn.Module, projector: torch.nn.Module | None, frames: int) -> int:
    """Positions the projector runs on for one clip of ``frames`` encoder positions: Qwen2-Audio's encoder
    average-pools by 2 before it (``avg_pooler``); Ultravox's projector stacks ``stack_factor`` frames."""
    if projector is None:
        return 0
    if getattr(encoder, "avg_pooler", None) is not None:
        frames //= 2
    stack = int(getattr(projector, "stack_factor", 1) or 1)
    return -(-frames // stack)


def useful_flops(model: torch.nn.Module, adapter: ModelAdapter, real_tokens: int, frames: list[int]) -> float:
    """FLOPs the extraction must do: decoder linear layers (LM head excluded) per real token, plus per clip
    the audio encoder's linear layers and attention (``4 t^2 d`` per layer) over its ``t`` frames, and the
    projector's linear layers over the positions it sees. Convolutions of the encoder's stem are left out
    (about 1% of a Whisper-large encoder's FLOPs over the 30-s window)."""
    decoder = adapter.layer_handles()
    decoder_linear = sum(_linear_parameters(block) for block in decoder.blocks)
    encoder = _part(model, "audio_tower")
    projector = _part(model, "multi_modal_projector")
    audio = 0.0
    if encoder is not None:
        d = int(encoder.config.d_model)
        layers = int(encoder.config.encoder_layers)
        linear = _linear_parameters(encoder)
        projector_linear = _linear_parameters(projector) if projector is not None else 0
        audio = sum(
            2 * linear * t
            + layers * 4 * t**2 * d
            + 2 * projector_linear * projector_positions(encoder, projector, t)
            for t in frames
        )
    return 2.0 * decoder_linear * real_tokens + audio


def _timed_prepare(adapter: ModelAdapter, probes: ProbeSet) -> tuple[list[Any], float]:
    """The inputs as both sides prepare them (audio read, features, tokens), and how long that takes."""
    started = time.perf_counter()
    prepared, _ = prepare_samples(adapter, probes, list(probes.samples), "shared-suffix")
    return prepared, time.perf_counter() - started


def _relative_difference(engine: Any, naive: Any) -> float:
    engine_index, naive_index = common_layers(engine.manifest.layers, naive.layers)
    a = engine.latents[:, engine_index].astype(np.float64)
    b = naive.latents[:, naive_index].astype(np.float64)
    return float(np.max(np.linalg.norm(a - b, axis=-1) / np.maximum(np.linalg.norm(b, axis=-1), 1e-12)))


def _peak_above(device: torch.device, run: Callable[[], Any]) -> tuple[Any, float, int | None]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    result = run()
    _synchronize(device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) - base if device.type == "cuda" else None
    return result, seconds, peak


def bench_model(
    name: str, args: argparse.Namespace, probes: ProbeSet, device: torch.device, rate: float
) -> dict[str, Any]:
    """Interleaved engine/naive rounds on one random-weight model; figures for the report."""
    built = time.perf_counter()
    adapter, model, attach = BUILDERS[name](args.scale, device)
    parameters = sum(p.numel() for p in model.parameters())
    reference = copy.deepcopy(model).float()  # the naive side: the same weights in float32
    build_seconds = time.perf_counter() - built
    clips = sum(s.modality == "speech" for s in probes.samples)
    sides: dict[str, list[tuple[float, int | None]]] = {"engine": [], "naive": []}
    outputs: dict[str, Any] = {}
    plan = ""
    stats_seen: Any = None

    def engine() -> Any:
        attach(model, torch.bfloat16)
        adapter.encoder_cache = EncoderCache()  # caches off: every round encodes every clip
        return extract_latents(
            adapter, probes, device=str(device), dtype="bfloat16", batch_size=args.batch_size
        )

    def naive() -> Any:
        attach(reference, torch.float32)
        return naive_extract(adapter, probes)

    engine()  # warm-up: kernels, allocator, feature extraction paths
    naive_probe = probes.model_copy(update={"samples": probes.samples[:2]})
    attach(reference, torch.float32)
    naive_extract(adapter, naive_probe)
    for round_index in range(args.rounds):
        order = ("engine", "naive") if round_index % 2 == 0 else ("naive", "engine")
        for side in order:
            result, seconds, peak = _peak_above(device, engine if side == "engine" else naive)
            sides[side].append((seconds, peak))
            outputs[side] = result
    latents, stats_seen = outputs["engine"]
    plan = stats_seen.memory_plan
    naive_result = outputs["naive"]
    engine_seconds = statistics.median(s for s, _ in sides["engine"])
    naive_seconds = statistics.median(s for s, _ in sides["naive"])
    real_tokens = stats_seen.real_tokens
    attach(model, torch.bfloat16)
    prepared, _ = _timed_prepare(adapter, probes)  # warm: file cache and feature paths
    prepared, prepare_seconds = _timed_prepare(adapter, probes)
    frames = encoder_frames(prepared)
    flops = useful_flops(model, adapter, real_tokens, frames)
    peaks = [p for _, p in sides["engine"] if p is not None]
    naive_peaks = [p for _, p in sides["naive"] if p is not None]
    figures = {
        "model": name,
        "label": "full-size published shapes, RANDOM weights, SYNTHETIC byte-level tokenizer"
        if args.scale == "full"
        else "TINY shapes (code-path check only), RANDOM weights, SYNTHETIC tokenizer",
        "parameters": parameters,
        "attention": str(
            getattr(getattr(model, "config", None), "_attn_implementation", None)
            or getattr(adapter.layer_handles().blocks[0].self_attn.config, "_attn_implementation", None)
        ),
        "fp32_matmul_allows_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "inputs": len(probes.samples),
        "texts": len(probes.samples) - clips,
        "clips": clips,
        "real_tokens": real_tokens,
        "padded_tokens": stats_seen.padded_tokens,
        "batches": stats_seen.batches,
        "memory_plan": plan,
        "build_seconds": build_seconds,
        "engine_seconds": engine_seconds,
        "naive_seconds": naive_seconds,
        "engine_rounds_s": [s for s, _ in sides["engine"]],
        "naive_rounds_s": [s for s, _ in sides["naive"]],
        "speedup": naive_seconds / engine_seconds,
        "engine_inputs_per_s": len(probes.samples) / engine_seconds,
        "naive_inputs_per_s": len(probes.samples) / naive_seconds,
        "engine_tokens_per_s": real_tokens / engine_seconds,
        "naive_tokens_per_s": real_tokens / naive_seconds,
        "useful_tflop": flops / 1e12,
        "engine_tflop_per_s": flops / engine_seconds / 1e12,
        "naive_tflop_per_s": flops / naive_seconds / 1e12,
        "engine_share_of_bf16_matmul": flops / engine_seconds / rate,
        "prepare_seconds": prepare_seconds,
        "engine_forward_share_of_bf16_matmul": flops / max(engine_seconds - prepare_seconds, 1e-9) / rate,
        "encoder_frames_per_clip_mean": float(np.mean(frames)) if frames else 0.0,
        "engine_peak_gib_above_weights": max(peaks) / 1024**3 if peaks else None,
        "naive_peak_gib_above_weights": max(naive_peaks) / 1024**3 if naive_peaks else None,
        "max_relative_difference_bf16_vs_fp32": _relative_difference(latents, naive_result),
    }
    adapter.unload()
    return figures


def print_estimates(scale: str, batch: int, seq_lens: dict[str, int]) -> None:
    """The memory plan's estimate for each model, built on the ``meta`` device (no memory, no GPU): compare it
    with a device run's ``engine_peak_gib_above_weights``."""
    from benchmark.engine.memory import audio_encoder_shape, count_parameters, decoder_config, estimate_memory

    for name, build in BUILDERS.items():
        _, model, _ = build(scale, torch.device("meta"))
        estimate = estimate_memory(
            decoder_config(model),
            batch_size=batch,
            seq_len=seq_lens.get(name, 128),
            dtype=torch.bfloat16,
            parameters=count_parameters(model),
            encoder=audio_encoder_shape(model),
        )
        print(f"{name}: {estimate.describe()}")


def recount(path: Path) -> dict[str, Any]:
    """Useful FLOPs of a recorded run counted again with this file's ``useful_flops``, from the run's real
    tokens and the encoder calls of the same inputs (models built on the ``meta`` device: no weights, no
    GPU). For records written before a fix of the count; the device seconds are the recorded ones."""
    record = json.loads(path.read_text(encoding="utf-8"))
    rate = float(record["bf16_matmul_tflop_per_s"]) * 1e12
    probe_name, profile = record["probe_set"].split("/")  # the run's own set and profile ("crossmodal/ci")
    out = []
    for entry in record["models"]:
        if "error" in entry:
            continue
        name = entry["model"]
        probes = choose_inputs(resolve_probes(probe_name, profile), entry["texts"], entry["clips"])
        adapter, model, attach = BUILDERS[name]("full", torch.device("meta"))
        attach(model, torch.bfloat16)
        prepared, _ = prepare_samples(adapter, probes, list(probes.samples), "shared-suffix")
        frames = encoder_frames(prepared)
        flops = useful_flops(model, adapter, int(entry["real_tokens"]), frames)
        forward_seconds = entry["engine_seconds"] - entry["prepare_seconds"]
        out.append(
            {
                "model": name,
                "recorded_useful_tflop": entry["useful_tflop"],
                "useful_tflop": flops / 1e12,
                "encoder_calls": len(frames),
                "encoder_positions_mean": sum(frames) / max(len(frames), 1),
                "engine_share_of_bf16_matmul": flops / entry["engine_seconds"] / rate,
                "engine_forward_share_of_bf16_matmul": flops / forward_seconds / rate,
            }
        )
    return {"recounted": str(path), "device": record["device"], "models": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--probes", default="crossmodal", help="probe set name or folder. Default: %(default)r"
    )
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None, help="Default: chosen from free memory")
    parser.add_argument("--scale", choices=sorted(SHAPES), default="full")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", default=",".join(BUILDERS))
    parser.add_argument("--out", type=Path, default=None, help="folder for gpu_full_size.json")
    parser.add_argument(
        "--estimate-only",
        action="store_true",
        help="print the memory estimates at batch 64 and the H200 run's decoder lengths, run nothing",
    )
    parser.add_argument(
        "--recount",
        type=Path,
        default=None,
        help="a recorded gpu_full_size.json: count its useful FLOPs again (meta-device models), run nothing",
    )
    args = parser.parse_args(argv)
    if args.recount is not None:
        print(json.dumps(recount(args.recount), indent=1))
        return 0
    if args.estimate_only:
        print_estimates(
            args.scale, args.batch_size or 64, {"qwen2-audio-7b": 124, "ultravox-0.5-llama-3.1-8b": 202}
        )
        return 0
    device = torch.device(args.device)
    probes = choose_inputs(resolve_probes(args.probes, args.profile), args.texts, args.clips)
    rate = matmul_rate(device)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "bf16_matmul_tflop_per_s": rate / 1e12,
        "probe_set": f"{probes.name}/{args.profile}",
        "models": [],
    }
    for name in args.models.split(","):
        try:
            figures = bench_model(name, args, probes, device, rate)
        except Exception:  # one model's failure must not lose the other's figures
            figures = {"model": name, "error": traceback.format_exc()}
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        report["models"].append(figures)
        print(json.dumps(figures, indent=1), flush=True)
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "gpu_full_size.json").write_text(json.dumps(report, indent=1) + "\n")
    report["bf16_matmul_tflop_per_s_after"] = matmul_rate(device) / 1e12
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_full_size.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "models"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
