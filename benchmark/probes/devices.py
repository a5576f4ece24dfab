"""Recording-device chains for the speech grid (claims S2, S8): physical parameters fixed before any latent.

Why module constants: DESIGN.md asks that the device chain's physical parameters be fixed before any latent
is looked at; they are written here once, each with the reason for its value, and recorded in every clip's
``preprocessing`` tuple. Every chain is deterministic given its seed (noise comes from a seeded numpy
``Generator``). Filtering uses scipy.signal, resampling soxr, and the room impulse response pyroomacoustics'
image-source model (a well-kept room-acoustics library).

The five devices:

- ``clean``: close microphone; the synthesised waveform unchanged.
- ``telephone``: narrow-band landline: 300-3400 Hz band-pass, 8 kHz sampling, 8-bit mu-law companding.
- ``far_field``: a microphone about 2.9 m from the talker in a 6 x 5 x 3 m room with RT60 about 0.5 s, plus
  ambient (pink) noise at 15 dB SNR.
- ``noisy``: close microphone in loud ambient (pink) noise at 5 dB SNR.
- ``cheap_mic``: a low-cost MEMS microphone module, modelled from its published specification: DFRobot
  *Fermion: MEMS Microphone Module* (SKU SEN0487), https://wiki.dfrobot.com/sen0487, "Frequency Range
  100~8k Hz", "S/N Ratio 59 dBA", "Sensitivity -42 dB". The published range is applied as a second-order
  high-pass at 100 Hz (its upper edge, 8 kHz, is the Nyquist frequency of 16 kHz audio, so it needs no filter
  here), and its SNR (referred to 94 dB SPL) as white self-noise relative to speech at
  :data:`CHEAP_MIC_SPEECH_SPL_DB`. The datasheet gives a band, not a measured curve: that is a limit of
  this model and is stated in the probe set's caveats.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import soxr
from scipy import signal

from benchmark.core.audio import SAMPLE_RATE

DEVICES: tuple[str, ...] = ("clean", "telephone", "far_field", "noisy", "cheap_mic")

# --- telephone -------------------------------------------------------------------------------------------
#: Pass band of a narrow-band telephone channel (ITU-T G.712's nominal 300-3400 Hz voice band).
TELEPHONE_BAND_HZ: tuple[float, float] = (300.0, 3400.0)
#: Order of the Butterworth band-pass (applied forward and backward, so the effective order doubles): steep
#: enough that energy below 300 Hz and above 3400 Hz is attenuated by more than 20 dB half an octave away.
TELEPHONE_FILTER_ORDER = 6
#: Narrow-band telephony samples at 8 kHz (G.711).
TELEPHONE_RATE_HZ = 8000
#: mu-law constant of G.711 (North America / Japan), quantised to 8 bits.
MU_LAW_MU = 255
MU_LAW_BITS = 8

# --- far field -------------------------------------------------------------------------------------------
#: Room size in metres (a mid-sized office); walls share one absorption coefficient.
ROOM_DIMENSIONS_M: tuple[float, float, float] = (6.0, 5.0, 3.0)
#: Talker's mouth (standing) and a microphone on a table across the room: 2.9 m apart.
SOURCE_POSITION_M: tuple[float, float, float] = (1.5, 2.0, 1.6)
MIC_POSITION_M: tuple[float, float, float] = (4.2, 3.1, 1.2)
#: The reverberation time the far-field room must show (the issue asks for about 0.5 s).
FAR_FIELD_RT60_S = 0.5
#: Sabine design value given to pyroomacoustics.inverse_sabine: its image-source RIR in this room then
#: measures T30 = 0.50 s (Sabine's formula overestimates the decay of this shoebox, so the design value is lower).
FAR_FIELD_SABINE_DESIGN_RT60_S = 0.44
#: Ambient noise level of the far-field room relative to the reverberant speech.
FAR_FIELD_SNR_DB = 15.0

# --- noisy -----------------------------------------------------------------------------------------------
#: Loud ambient noise (a busy street or cafe) relative to close-microphone speech.
NOISY_SNR_DB = 5.0

# --- cheap microphone ------------------------------------------------------------------------------------
#: Lower edge of the published frequency range of the DFRobot SEN0487 MEMS module.
CHEAP_MIC_LOW_CUT_HZ = 100.0
CHEAP_MIC_FILTER_ORDER = 2
#: Published S/N ratio of the module (dB, referred to 1 Pa = 94 dB SPL at 1 kHz).
CHEAP_MIC_SNR_DB = 59.0
#: Speech level at the module (conversational speech at about 30 cm); the self-noise sits
#: CHEAP_MIC_SNR_DB - (94 - this) = 35 dB below the speech.
CHEAP_MIC_SPEECH_SPL_DB = 70.0
CHEAP_MIC_REFERENCE_SPL_DB = 94.0


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64)))


def measured_snr_db(clean: np.ndarray, noisy: np.ndarray) -> float:
    """SNR of ``noisy`` against its noise-free version, both over the whole clip (the convention used here)."""
    if clean.shape != noisy.shape:
        raise ValueError(f"measured_snr_db: shapes differ, {clean.shape} vs {noisy.shape}")
    return 10.0 * np.log10(_power(clean) / _power(noisy - clean))


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power 1/f noise: ambient noise has most of its energy at low frequencies, unlike white noise."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    scale = np.ones_like(freqs)
    scale[1:] = 1.0 / np.sqrt(freqs[1:])
    scale[0] = 0.0
    noise = np.fft.irfft(spectrum * scale, n)
    return noise / np.sqrt(_power(noise))


def add_noise_at_snr(
    speech: np.ndarray, snr_db: float, rng: np.random.Generator, *, colour: str
) -> np.ndarray:
    """``speech`` plus seeded noise scaled so the whole-clip SNR is exactly ``snr_db``."""
    if colour == "pink":
        noise = pink_noise(speech.size, rng)
    elif colour == "white":
        noise = rng.standard_normal(speech.size)
        noise /= np.sqrt(_power(noise))
    else:
        raise ValueError(f"noise colour {colour!r} is not 'pink' or 'white'")
    power = _power(speech)
    if power == 0.0:
        raise ValueError("cannot set an SNR against a silent clip")
    return speech + noise * np.sqrt(power / 10.0 ** (snr_db / 10.0))


def mu_law_roundtrip(x: np.ndarray, mu: int = MU_LAW_MU, bits: int = MU_LAW_BITS) -> np.ndarray:
    """Compress with mu-law, quantise to ``bits`` bits, expand: the companding of a G.711 channel."""
    x = np.clip(x, -1.0, 1.0)
    compressed = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    levels = 2 ** (bits - 1)
    quantised = np.round(compressed * (levels - 1)) / (levels - 1)
    return np.sign(quantised) * np.expm1(np.abs(quantised) * np.log1p(mu)) / mu


def telephone(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Band-pass 300-3400 Hz, down to 8 kHz, 8-bit mu-law, back up to 16 kHz."""
    del rng  # the channel adds no noise: its distortion is band limitation and quantisation
    sos = signal.butter(
        TELEPHONE_FILTER_ORDER, TELEPHONE_BAND_HZ, btype="bandpass", fs=SAMPLE_RATE, output="sos"
    )
    banded = signal.sosfiltfilt(sos, x.astype(np.float64))
    narrow = soxr.resample(banded, SAMPLE_RATE, TELEPHONE_RATE_HZ, quality="VHQ")
    peak = float(np.max(np.abs(narrow)))
    scale = 0.9 / peak if peak > 0 else 1.0  # the line level: companding works on the full code range
    companded = mu_law_roundtrip(narrow * scale) / scale
    wide = soxr.resample(companded, TELEPHONE_RATE_HZ, SAMPLE_RATE, quality="VHQ")
    return _fit_length(np.asarray(wide), x.size)


@lru_cache(maxsize=1)
def room_impulse_response() -> np.ndarray:
    """The far-field room's impulse response (image-source model; deterministic, computed once)."""
    import pyroomacoustics as pra

    absorption, max_order = pra.inverse_sabine(FAR_FIELD_SABINE_DESIGN_RT60_S, list(ROOM_DIMENSIONS_M))
    room = pra.ShoeBox(
        list(ROOM_DIMENSIONS_M),
        fs=SAMPLE_RATE,
        materials=pra.Material(absorption),
        max_order=max_order,
        use_rand_ism=False,
        air_absorption=False,
    )
    room.add_source(list(SOURCE_POSITION_M))
    room.add_microphone(list(MIC_POSITION_M))
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    return rir / float(np.max(np.abs(rir)))


def far_field(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Convolve with the room and keep the reverberant tail (RT60 long), then ambient noise at 15 dB SNR."""
    rir = room_impulse_response()
    tail = int(FAR_FIELD_RT60_S * SAMPLE_RATE)
    wet = signal.fftconvolve(x.astype(np.float64), rir)[: x.size + tail]
    return add_noise_at_snr(wet, FAR_FIELD_SNR_DB, rng, colour="pink")


def noisy(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Close microphone with ambient pink noise at 5 dB SNR."""
    return add_noise_at_snr(x.astype(np.float64), NOISY_SNR_DB, rng, colour="pink")


def cheap_mic(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The MEMS module's low cut at 100 Hz and its self-noise (white) 35 dB below the speech."""
    sos = signal.butter(
        CHEAP_MIC_FILTER_ORDER, CHEAP_MIC_LOW_CUT_HZ, btype="highpass", fs=SAMPLE_RATE, output="sos"
    )
    filtered = signal.sosfilt(sos, x.astype(np.float64))
    snr = CHEAP_MIC_SNR_DB - (CHEAP_MIC_REFERENCE_SPL_DB - CHEAP_MIC_SPEECH_SPL_DB)
    return add_noise_at_snr(filtered, snr, rng, colour="white")


def clean(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The close microphone: the waveform unchanged."""
    del rng
    return x.astype(np.float64)


_CHAINS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "clean": clean,
    "telephone": telephone,
    "far_field": far_field,
    "noisy": noisy,
    "cheap_mic": cheap_mic,
}


def describe(device: str) -> str:
    """One line with the device's physical parameters (stored in each clip's ``preprocessing``)."""
    if device == "clean":
        return "device:clean(close microphone, unchanged)"
    if device == "telephone":
        low, high = TELEPHONE_BAND_HZ
        return (
            f"device:telephone(butterworth bandpass {low:g}-{high:g} Hz order {TELEPHONE_FILTER_ORDER} zero-phase, "
            f"{TELEPHONE_RATE_HZ} Hz, mu-law mu={MU_LAW_MU} {MU_LAW_BITS}-bit)"
        )
    if device == "far_field":
        return (
            f"device:far_field(room {'x'.join(f'{d:g}' for d in ROOM_DIMENSIONS_M)} m, RT60 {FAR_FIELD_RT60_S:g} s "
            f"(sabine design {FAR_FIELD_SABINE_DESIGN_RT60_S:g} s, image source), source {SOURCE_POSITION_M} "
            f"mic {MIC_POSITION_M}, pink noise {FAR_FIELD_SNR_DB:g} dB SNR)"
        )
    if device == "noisy":
        return f"device:noisy(pink noise {NOISY_SNR_DB:g} dB SNR)"
    if device == "cheap_mic":
        return (
            f"device:cheap_mic(DFRobot SEN0487 MEMS: highpass {CHEAP_MIC_LOW_CUT_HZ:g} Hz order "
            f"{CHEAP_MIC_FILTER_ORDER}, white self-noise "
            f"{CHEAP_MIC_SNR_DB - (CHEAP_MIC_REFERENCE_SPL_DB - CHEAP_MIC_SPEECH_SPL_DB):g} dB SNR)"
        )
    raise ValueError(f"unknown device {device!r}; known: {', '.join(DEVICES)}")


def apply_device(audio: np.ndarray, device: str, *, seed: int) -> np.ndarray:
    """``audio`` (float, 16 kHz) as recorded through ``device``; the same seed gives the same samples."""
    try:
        chain = _CHAINS[device]
    except KeyError:
        raise ValueError(f"unknown device {device!r}; known: {', '.join(DEVICES)}") from None
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"device {device!r}: expected a non-empty mono waveform, got shape {audio.shape}")
    out = chain(np.asarray(audio), np.random.default_rng(seed))
    return np.asarray(out, dtype=np.float32)


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad to ``n`` samples (resampling round trips can be off by a sample)."""
    if x.size >= n:
        return x[:n]
    return np.concatenate([x, np.zeros(n - x.size, dtype=x.dtype)])
