"""Per-clip input gains and peak normalisation for the normalisation probe set (claim S3).

Why: the paper peak-normalises waveforms to [-1, 1] and finds the effect on clustering model-specific. With
fixture clips that all leave the synthesiser at one level, normalising would change nothing; so every clip gets
its own seeded input level between -30 and -3 dBFS (peak), and is stored twice: raw, and peak-normalised.
"""

from __future__ import annotations

import hashlib

import numpy as np

#: Range of the per-clip peak level drawn for raw clips (dBFS, inclusive bounds of a uniform draw).
GAIN_RANGE_DBFS: tuple[float, float] = (-30.0, -3.0)
#: Peak level of a normalised clip: 0 dBFS, i.e. the paper's scaling of the waveform to [-1, 1].
PEAK_TARGET_DBFS = 0.0


def stable_seed(*parts: object) -> int:
    """A 63-bit seed from the parts' text (Python's ``hash`` is salted per process, this is not)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def draw_gain_db(seed: int, low: float = GAIN_RANGE_DBFS[0], high: float = GAIN_RANGE_DBFS[1]) -> float:
    """One peak level in dBFS, uniform in [low, high], rounded to 0.01 dB so the manifest shows it exactly."""
    if not low < high <= 0.0:
        raise ValueError(f"gain range ({low}, {high}) dBFS must satisfy low < high <= 0")
    return round(float(np.random.default_rng(seed).uniform(low, high)), 2)


def peak_dbfs(audio: np.ndarray) -> float:
    """Peak level of a float waveform (full scale 1.0) in dBFS; -inf for silence."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return -np.inf if peak == 0.0 else 20.0 * np.log10(peak)


def set_peak(audio: np.ndarray, target_dbfs: float, *, name: str = "clip") -> np.ndarray:
    """Scale ``audio`` so its peak sits at ``target_dbfs`` (refuses silence, which has no peak to set)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak == 0.0 or not np.isfinite(peak):
        raise ValueError(f"{name}: cannot set the peak of a silent or non-finite waveform")
    if target_dbfs > 0.0:
        raise ValueError(f"{name}: target peak {target_dbfs} dBFS would clip")
    return (audio * (10.0 ** (target_dbfs / 20.0) / peak)).astype(np.float32)


def apply_gain(audio: np.ndarray, gain_dbfs: float, *, name: str = "clip") -> np.ndarray:
    """The raw version of a clip: its peak placed at the drawn level ``gain_dbfs``."""
    return set_peak(audio, gain_dbfs, name=name)


def peak_normalise(audio: np.ndarray, *, name: str = "clip") -> np.ndarray:
    """The normalised version: peak at :data:`PEAK_TARGET_DBFS` whatever the input level."""
    return set_peak(audio, PEAK_TARGET_DBFS, name=name)
