"""Audio constants and WAV bytes: the one sample rate, the fixture WAV reader and the two writers.

Every supported audio encoder takes 16 kHz mono, so every waveform handed to an adapter is at
:data:`SAMPLE_RATE`. Fixture clips are 16-bit PCM WAV written with the standard library (a fixed 44-byte header,
identical on every platform); clips decoded from hub datasets are written as 32-bit float WAV by hand, because
libsndfile adds a PEAK chunk with a wall-clock timestamp to float WAVs (the same clip written twice hashed
differently). Arbitrary audio formats are decoded, checked and resampled by ``benchmark.probes.io``.
"""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import numpy as np

#: Sample rate of every waveform an adapter receives (Hz).
SAMPLE_RATE = 16_000
#: Full scale of 16-bit PCM in the fixtures (symmetric, so +-1.0 maps to +-32767).
PCM16_FULL_SCALE = 32767.0


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] as little-endian int16 (rounded, clipped)."""
    return np.clip(np.round(np.asarray(audio, np.float64) * PCM16_FULL_SCALE), -32768, 32767).astype("<i2")


def pcm16_wav_bytes(audio: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """16-bit PCM mono WAV from the standard library writer (a fixed 44-byte header)."""
    if not np.all(np.isfinite(audio)):
        raise ValueError("pcm16_wav_bytes: waveform has NaN or infinite samples")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(to_pcm16(audio).tobytes())
    return buffer.getvalue()


def read_pcm16_wav(path: str | Path, *, rate: int | None = None) -> np.ndarray:
    """float32 samples of a 16-bit mono PCM WAV (full scale 32767); ``rate`` checks the sample rate."""
    with wave.open(str(path), "rb") as src:
        if src.getnchannels() != 1 or src.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        if rate is not None and src.getframerate() != rate:
            raise ValueError(f"{path}: expected {rate} Hz, got {src.getframerate()} Hz")
        data = np.frombuffer(src.readframes(src.getnframes()), dtype="<i2")
    return data.astype(np.float32) / PCM16_FULL_SCALE


def float_wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """32-bit float WAV (IEEE float, fmt + fact + data chunks) whose bytes depend on the samples only."""
    frames = np.asarray(audio, dtype="<f4")
    frames = frames[:, None] if frames.ndim == 1 else frames
    n_frames, channels = frames.shape
    data = frames.tobytes()
    block = 4 * channels
    fmt = struct.pack("<HHIIHH", 3, channels, int(sample_rate), int(sample_rate) * block, block, 32)
    chunks = b"".join(
        [
            b"fmt " + struct.pack("<I", len(fmt)) + fmt,
            b"fact" + struct.pack("<II", 4, n_frames),
            b"data" + struct.pack("<I", len(data)) + data,  # 4-byte samples: always an even size, no pad byte
        ]
    )
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def write_float_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write float audio as 32-bit float WAV (no requantisation of decoded sources), byte-reproducibly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(float_wav_bytes(audio, sample_rate))
    return path
