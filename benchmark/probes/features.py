"""Input-feature (log-mel) distances per factor, to report beside latent distances (DESIGN.md, fixture audio).

Why: a claim such as S2 ("changing the device moves a latent less than changing the speaker") says something
about the model only if one knows how far each factor moves the *input*. This module computes the log-mel
spectrogram the Whisper front end sees (transformers' ``WhisperFeatureExtractor``, 80 bins) and, for a
crossed design such as the speech grid, the mean distance between clips that differ in exactly one factor
(content, speaker or device) with all other factors equal.

Clips differ in length, so each is summarised by its per-bin mean and standard deviation over time (160
numbers) and compared with the Euclidean distance; a time-aligned distance (DTW) would be costlier by orders
of magnitude on a 1000-clip grid. Run ``python -m benchmark.probes.features fixtures/speech-grid`` to write
``logmel_distances.json`` beside the manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from functools import lru_cache
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.core.audio import SAMPLE_RATE, read_pcm16_wav
from benchmark.core.schema import Sample

N_MELS = 80
#: Whisper's hop length: one log-mel frame per 10 ms.
HOP_LENGTH = 160
#: Factors of the speech grid, as ``Sample`` label axes.
GRID_FACTORS: tuple[str, ...] = ("meaning_id", "speaker", "device")


@lru_cache(maxsize=1)
def _extractor() -> Any:
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(feature_size=N_MELS)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Whisper's normalised log-mel spectrogram ``[80, frames]`` of a 16 kHz clip, without the 30 s padding."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"log_mel: expected a non-empty mono waveform, got shape {audio.shape}")
    features = _extractor()(audio, sampling_rate=SAMPLE_RATE, return_tensors="np", padding="longest")
    return np.asarray(features["input_features"][0])


def pooled_log_mel(audio: np.ndarray) -> np.ndarray:
    """Per-bin mean and standard deviation over time: a length-free summary of a clip (160 values)."""
    mel = log_mel(audio)
    return np.concatenate([mel.mean(axis=1), mel.std(axis=1)])


def factor_distances(
    samples: Sequence[Sample], features: np.ndarray, factors: Sequence[str] = GRID_FACTORS
) -> dict[str, dict[str, float | int]]:
    """For each factor: the mean distance over pairs differing in it alone, and over pairs sharing it.

    ``features`` holds one row per sample, in order. ``only_this_differs`` is the comparison a claim like S2
    needs (the other factors held equal); ``same`` / ``different`` are the marginal means over all pairs.
    """
    if len(samples) != len(features):
        raise ValueError(f"factor_distances: {len(samples)} samples but {len(features)} feature rows")
    labels = np.array([[s.label(f) or "" for f in factors] for s in samples], dtype=object)
    for j, factor in enumerate(factors):
        if len(set(labels[:, j])) < 2:
            raise ValueError(
                f"factor_distances: factor {factor!r} has fewer than two values in these samples"
            )
    feats = np.asarray(features, dtype=np.float64)
    sums = {f: {"only": 0.0, "same": 0.0, "diff": 0.0} for f in factors}
    counts = {f: {"only": 0, "same": 0, "diff": 0} for f in factors}
    for i, k in combinations(range(len(samples)), 2):
        distance = float(np.linalg.norm(feats[i] - feats[k]))
        differs = labels[i] != labels[k]
        n_diff = int(differs.sum())
        for j, factor in enumerate(factors):
            key = "diff" if differs[j] else "same"
            sums[factor][key] += distance
            counts[factor][key] += 1
            if differs[j] and n_diff == 1:
                sums[factor]["only"] += distance
                counts[factor]["only"] += 1
    out: dict[str, dict[str, float | int]] = {}
    for factor in factors:
        c, s = counts[factor], sums[factor]
        out[factor] = {
            "only_this_differs": s["only"] / c["only"] if c["only"] else float("nan"),
            "n_pairs_only": c["only"],
            "same": s["same"] / c["same"] if c["same"] else float("nan"),
            "different": s["diff"] / c["diff"] if c["diff"] else float("nan"),
        }
    return out


def probe_set_distances(
    set_dir: Path | str, *, profile: str = "full", factors: Sequence[str] = GRID_FACTORS
) -> dict[str, Any]:
    """Log-mel factor distances of a built probe set's speech clips in one profile."""
    root = Path(set_dir)
    meta = json.loads((root / "probeset.json").read_text(encoding="utf-8"))
    if profile not in meta["profiles"]:
        raise ValueError(f"{root}: no profile {profile!r}; has {sorted(meta['profiles'])}")
    wanted = set(meta["profiles"][profile])
    manifest_bytes = (root / "manifest.jsonl").read_bytes()
    rows = [json.loads(line) for line in manifest_bytes.decode("utf-8").splitlines() if line.strip()]
    samples = [Sample(**row) for row in rows if row["id"] in wanted and row.get("audio_path")]
    if not samples:
        raise ValueError(f"{root}: profile {profile!r} has no speech clips")
    features = np.stack(
        [
            pooled_log_mel(read_pcm16_wav(root / s.audio_path, rate=SAMPLE_RATE))
            for s in samples
            if s.audio_path
        ]
    )
    return {
        "probe_set": meta["name"],
        "profile": profile,
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "feature": "whisper log-mel (80 bins), per-bin mean and std over time, euclidean distance",
        "n_clips": len(samples),
        "factors": factor_distances(samples, features, factors),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: write ``logmel_distances.json`` (ci and full profiles) next to a probe set's manifest."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.probes.features", description=__doc__.split("\n")[0]
    )
    parser.add_argument("set_dir", type=Path)
    parser.add_argument("--factors", default=",".join(GRID_FACTORS))
    args = parser.parse_args(argv)
    factors = [f.strip() for f in args.factors.split(",")]
    result = {p: probe_set_distances(args.set_dir, profile=p, factors=factors) for p in ("ci", "full")}
    out = args.set_dir / "logmel_distances.json"
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    for profile, res in result.items():
        for factor, row in res["factors"].items():
            print(
                f"{profile:4s} {factor:10s} only-this-differs {row['only_this_differs']:.3f} "
                f"(n={row['n_pairs_only']}) same {row['same']:.3f} different {row['different']:.3f}"
            )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
