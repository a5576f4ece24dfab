"""Scaling extraction past one CPU: sharding over processes, placement over GPUs (estimates: ``benchmark.engine.memory``).

Why these pieces:

- **Memory estimate before a run.** A 7B model that does not fit should fail in a second with a message
  that says by how much and what to try, not after minutes of loading with a CUDA OOM traceback.
  :func:`benchmark.engine.memory.estimate_memory` counts weights exactly (parameters built on the ``meta`` device, no allocation)
  and bounds activations of one decoder layer at a time (the engine keeps only last-token vectors and
  never computes logits, so activations do not accumulate over layers).
- **Batch size from free memory.** :func:`benchmark.engine.memory.choose_batch_size` takes the largest power of two whose
  estimate fits in a share of the free memory (``torch.cuda.mem_get_info`` on a GPU). On GPU the dtype is
  bf16 where the model supports it (``ModelSpec.gpu_dtype``, applied by ``benchmark.engine.extract.resolve_dtype``).
- **Data-parallel extraction.** :func:`shard` splits a probe set by a hash of each sample id, so the split
  does not depend on order, process count changes move few samples, and every process computes it alone.
  :func:`extract_sharded` runs one shard per process into the *shared* content-keyed cache
  (``benchmark.engine.cache.LatentCache`` on a shared filesystem; entries are written atomically, so concurrent
  writers are safe), waits for the others, and assembles the full set from the cache with zero forward
  passes. Launch with accelerate, one process per GPU or machine::

      accelerate launch --num_processes 4 -m benchmark.engine.scale --model qwen2-audio-7b \\
          --probes crossmodal --cache-dir /shared/lalm-cache

  or on CPU for testing: ``accelerate launch --cpu --num_processes 2 -m benchmark.engine.scale ...``. Without
  accelerate, ``RANK``/``WORLD_SIZE`` are read, so ``torchrun`` or a job array works too.
- **Models larger than one GPU.** Load with ``device_map="auto"`` (accelerate's dispatch; set ``max_memory``
  per device) instead of ``.to(device)``: blocks then live on several GPUs, the engine's hooks still see
  each block's output (on that block's device) and copy only the ``[batch, d]`` last-token rows to the CPU.
  The estimate then applies to the sum of the devices' free memory (:func:`benchmark.engine.memory.free_memory` per device).
  ``--device-map auto`` (CLI, ``pytest claims/``) sets ``ModelAdapter.device_map``; the hub LALM adapters
  pass it to ``from_pretrained``. Ultravox's composite loader (three checkpoints joined) does not take it yet.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from typing import Any

from benchmark.core.schema import ProbeSet
from benchmark.engine.cache import LatentCache
from benchmark.engine.extract import ExtractionStats, LatentSet, extract_latents
from benchmark.models.base import ModelAdapter

#: Published shapes of the full-size models benchmarked on a GPU with random weights (no download).
FULL_SIZE_SHAPES: dict[str, dict[str, Any]] = {
    "meta-llama/Llama-3.1-8B": {
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rope_theta": 500000.0,
        "rms_norm_eps": 1e-5,
    },
    # Qwen2-Audio-7B's language model (Qwen2-7B shape); its Whisper-large audio encoder is not included.
    "Qwen/Qwen2-Audio-7B": {
        "model_type": "qwen2",
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 156032,
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5,
    },
}


def full_size_config(config_id: str) -> Any:
    """A transformers config with a full-size model's published shapes, built locally."""
    from transformers import AutoConfig

    if config_id not in FULL_SIZE_SHAPES:
        raise KeyError(f"no full-size shapes for {config_id!r}; known: {sorted(FULL_SIZE_SHAPES)}")
    shapes = dict(FULL_SIZE_SHAPES[config_id])
    return AutoConfig.for_model(shapes.pop("model_type"), **shapes)


# ---- sharding -------------------------------------------------------------------------------------------------


def shard_of(sample_id: str, count: int) -> int:
    """Shard index of one sample: sha256 of its id modulo ``count`` (stable across runs and machines)."""
    return int.from_bytes(hashlib.sha256(sample_id.encode("utf-8")).digest()[:8], "big") % count


def shard(probe_set: ProbeSet, index: int, count: int) -> ProbeSet:
    """The samples of shard ``index`` of ``count``, in probe-set order (may be empty for tiny sets)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard index must satisfy 0 <= index < count; got index {index}, count {count}")
    chosen = [s for s in probe_set.samples if shard_of(s.id, count) == index]
    # model_construct: a ProbeSet refuses an empty sample list, and a shard of a tiny set may be empty.
    return ProbeSet.model_construct(**{**dict(probe_set), "samples": chosen, "root": probe_set.root})


def process_rank() -> tuple[int, int]:
    """``(index, count)`` of this process: accelerate's state when launched by it, else ``RANK``/``WORLD_SIZE``."""
    if "ACCELERATE_MIXED_PRECISION" in os.environ or "ACCELERATE_USE_CPU" in os.environ:
        from accelerate import PartialState

        state = PartialState()
        return state.process_index, state.num_processes
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _barrier(count: int) -> None:
    if count <= 1:
        return
    try:
        from accelerate import PartialState
    except ImportError:  # without accelerate, the caller synchronises (e.g. joins its processes)
        return
    state = PartialState()
    if state.num_processes == count:
        state.wait_for_everyone()


def extract_sharded(
    adapter: ModelAdapter,
    probe_set: ProbeSet,
    *,
    cache: LatentCache,
    index: int | None = None,
    count: int | None = None,
    gather: bool = True,
    **options: Any,
) -> tuple[LatentSet | None, ExtractionStats]:
    """Extract this process's shard into the shared ``cache``; with ``gather``, assemble the full set from it.

    ``index``/``count`` default to :func:`process_rank`. After the shard, the processes wait for each other
    (accelerate) and the gather reads every entry from the cache: its stats show zero forward passes when
    all shards finished. ``options`` go to ``extract_latents`` (template, batch_size, device, dtype).
    """
    if index is None or count is None:
        index, count = process_rank()
    part = shard(probe_set, index, count)
    accepted = [s for s in part.samples if adapter.accepts(s.modality, s.language)]
    stats = ExtractionStats()
    if accepted:
        _, stats = extract_latents(adapter, part, cache=cache, **options)
    _barrier(count)
    if not gather:
        return None, stats
    return extract_latents(adapter, probe_set, cache=cache, **options)


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmark.engine.scale``: one shard per process (launch with accelerate), then rank 0 saves."""
    from benchmark.models.catalog import get_adapter
    from benchmark.probes.catalog import resolve_probes

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--probes", required=True)
    parser.add_argument("--profile", default=None)
    parser.add_argument("--cache-dir", required=True, help="a folder every process can read and write")
    parser.add_argument("--out", default=None, help="rank 0 writes the assembled latents here")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args(argv)
    index, count = process_rank()
    adapter = get_adapter(args.model)
    probes = resolve_probes(args.probes, args.profile)
    latents, stats = extract_sharded(
        adapter,
        probes,
        cache=LatentCache(args.cache_dir),
        index=index,
        count=count,
        gather=index == 0,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
    )
    if latents is not None and args.out:
        latents.save(args.out)
    print(f"shard {index}/{count}: {stats.samples} samples, {stats.forward_passes} forward passes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
