"""Pieces shared by the hub adapters: the instruction, padding, last-token positions, loading.

Kept apart from the adapters so that Ultravox (own modules) and the native transformers 5 models build
their inputs, keys and batches the same way: a latent must not depend on which adapter padded it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from benchmark.core.audio import SAMPLE_RATE
from benchmark.core.errors import PipelineError, UnsupportedModelError, WeightsUnavailableError
from benchmark.models.base import Availability
from benchmark.models.lock import UNRESOLVED

#: The instruction that closes every user turn in the ``shared-suffix`` template, for every model and both
#: modalities. Why this string: it is short (a few tokens, so it barely dilutes the content), asks about the
#: *content* (not language, speaker or sound, which the claims test), is the same English string for every
#: probe language (so the suffix tokens are identical across languages and modalities), and its leading
#: newline separates it from the content whatever the content's final punctuation is.
INSTRUCTION = "\nWhat is said?"


def check_waveform(sample_id: str, waveform: np.ndarray | None) -> np.ndarray:
    """Mono float32, finite, non-empty: anything else is an error naming the sample."""
    if waveform is None:
        raise PipelineError(f"sample {sample_id!r}: modality 'speech' but no waveform was given")
    wave = np.asarray(waveform)
    if wave.ndim != 1:
        raise PipelineError(f"sample {sample_id!r}: waveform must be mono 1-D, got shape {wave.shape}")
    if wave.size == 0:
        raise PipelineError(f"sample {sample_id!r}: waveform is empty")
    wave = wave.astype(np.float32, copy=False)
    if not np.isfinite(wave).all():
        raise PipelineError(f"sample {sample_id!r}: waveform contains NaN or inf")
    return wave


def last_real_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last position with mask 1 in each row; right, left or no padding alike."""
    if attention_mask.ndim != 2:
        raise ValueError(f"attention_mask must be [batch, seq], got shape {tuple(attention_mask.shape)}")
    mask = attention_mask.to(torch.bool)
    if not mask.any(dim=1).all():
        empty = (~mask.any(dim=1)).nonzero().flatten().tolist()
        raise PipelineError(f"attention mask rows {empty} have no real token")
    seq = mask.shape[1]
    return (seq - 1 - mask.flip(1).to(torch.int8).argmax(dim=1)).to(torch.long)


def right_pad(rows: list[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad 1-D id rows; returns ``(input_ids, attention_mask)``. Padding side is set here, never
    taken from a tokenizer default (Ultravox's processor defaults to left)."""
    width = max(int(r.shape[0]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : row.shape[0]] = row
        mask[i, : row.shape[0]] = 1
    return ids, mask


def pad_and_cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Zero-pad every dim but the first to the largest size, then concatenate along dim 0.

    Used for per-clip audio features (variable frames, masks padded with 0 = "not real")."""
    ndim = tensors[0].ndim
    if any(t.ndim != ndim for t in tensors):
        raise PipelineError(f"audio feature tensors differ in rank: {[tuple(t.shape) for t in tensors]}")
    target = [max(int(t.shape[d]) for t in tensors) for d in range(ndim)]
    out = []
    for t in tensors:
        pad: list[int] = []
        for d in reversed(range(1, ndim)):
            pad.extend([0, target[d] - int(t.shape[d])])
        out.append(torch.nn.functional.pad(t, pad) if any(pad) else t)
    return torch.cat(out, dim=0)


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip() not in ("", "0", "false", "False")


def revision_kwargs(revision: str) -> dict[str, Any]:
    """``from_pretrained`` kwargs for a locked revision (none while it is still unresolved)."""
    kwargs: dict[str, Any] = {"local_files_only": hub_offline()}
    if revision != UNRESOLVED:
        kwargs["revision"] = revision
    return kwargs


def cached_availability(hub_id: str, revision: str, filename: str = "config.json") -> Availability:
    """Look in the local HF cache only; never downloads."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub ships with transformers
        return Availability(False, "huggingface_hub is not installed")
    rev = None if revision == UNRESOLVED else revision
    try:
        found = try_to_load_from_cache(hub_id, filename, revision=rev)
    except Exception as exc:  # malformed id, unreadable cache
        return Availability(False, f"cannot look up {hub_id!r} in the local HF cache: {exc}")
    if isinstance(found, str):
        return Availability(True, f"{hub_id} found in the local HF cache ({found})")
    where = "revision " + revision if revision != UNRESOLVED else "any revision (lock unresolved)"
    return Availability(
        False,
        f"{hub_id} ({where}) is not in the local HF cache; run `huggingface-cli download {hub_id}` on a "
        "machine with hub access (and `lalm-bench lock` to pin it)",
    )


def load_or_unavailable(hub_id: str, loader: Callable[[], Any]) -> Any:
    """Run a ``from_pretrained`` call; a missing download becomes ``WeightsUnavailableError`` naming the id."""
    try:
        return loader()
    except (OSError, ValueError) as exc:
        text = str(exc)
        markers = (
            "offline",
            "couldn't connect",
            "not found",
            "does not appear to have",
            "local_files_only",
            "cannot find",
            "gated",
            "401",
            "404",
            "is not a local folder",
            "connection",
        )
        if isinstance(exc, OSError) or any(m in text.lower() for m in markers):
            raise WeightsUnavailableError(
                f"weights of {hub_id!r} are not available here: {type(exc).__name__}: {text.splitlines()[0] if text else ''}"
            ) from exc
        raise


def forward_accepts(module: torch.nn.Module, name: str) -> bool:
    import inspect

    try:
        params = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False
    return name in params


def encode_with_specials(tokenizer: Any, text: str, specials: tuple[str, ...]) -> list[int]:
    """Token ids of ``text`` where each string in ``specials`` is one special token and the rest is plain text.

    Why: some tokenizers (mistral-common's tekken) never parse special-token strings out of text, so a prompt
    must be assembled from ids. Each special is checked to round-trip (an unknown one would silently become
    ``<unk>``); an unknown special raises ``UnsupportedModelError`` naming it."""
    ids: list[int] = []
    rest = text
    while rest:
        hits = [(rest.find(s), s) for s in specials if s and rest.find(s) >= 0]
        if not hits:
            ids.extend(tokenizer.encode(rest, add_special_tokens=False))
            break
        at, special = min(hits)
        if at:
            ids.extend(tokenizer.encode(rest[:at], add_special_tokens=False))
        ids.append(special_token_id(tokenizer, special))
        rest = rest[at + len(special) :]
    return [int(i) for i in ids]


def special_token_id(tokenizer: Any, token: str) -> int:
    """Id of one special token, checked by the reverse lookup (no silent ``<unk>``)."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    back = tokenizer.convert_ids_to_tokens(token_id) if isinstance(token_id, int) else None
    if not isinstance(token_id, int) or back != token:
        raise UnsupportedModelError(
            f"{type(tokenizer).__name__}: special token {token!r} is not in the vocabulary "
            f"(got id {token_id!r}, which maps back to {back!r})"
        )
    return token_id


# ---- Granite Speech log-mel features, torch only ---------------------------------------------------------
@dataclass(frozen=True)
class GraniteLogMel:
    """Granite Speech's input features without torchaudio (no torchaudio wheel matches torch 2.13).

    Same definition as ``GraniteSpeechFeatureExtractor`` (transformers 5): power-2 STFT (periodic Hann window
    of ``win_length`` centred in ``n_fft``, centre padding by reflection) -> HTK mel filterbank without
    normalisation (0 Hz to Nyquist) -> log10 of max(mel, 1e-10) -> floor at (clip max - 8) -> /4 + 1 -> drop
    the last frame if the count is odd -> stack frame pairs, giving ``[1, frames // 2, 2 * n_mels]``. One clip
    at a time: the extractor's batched path pads clips to a common length, which would change the encoder's
    output for the shorter ones."""

    sampling_rate: int = SAMPLE_RATE
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 80
    projector_window_size: int = 15
    projector_downsample_rate: int = 5

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> GraniteLogMel:
        """From a ``preprocessor_config.json`` dict (unknown keys ignored, missing ones default)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: config[k] for k in names if k in config})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def filterbank(self) -> torch.Tensor:
        """``[n_fft // 2 + 1, n_mels]`` HTK triangles, as torchaudio's ``melscale_fbanks(norm=None)``."""
        from transformers.audio_utils import mel_filter_bank

        bank = mel_filter_bank(
            num_frequency_bins=self.n_fft // 2 + 1,
            num_mel_filters=self.n_mels,
            min_frequency=0.0,
            max_frequency=self.sampling_rate / 2,
            sampling_rate=self.sampling_rate,
            norm=None,
            mel_scale="htk",
        )
        return torch.from_numpy(np.asarray(bank, dtype=np.float32))

    def __call__(self, waveform: np.ndarray) -> torch.Tensor:
        """``[1, frames // 2, 2 * n_mels]`` float32 features of one mono clip."""
        wave = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
        if wave.ndim != 1 or wave.numel() <= self.n_fft // 2:
            raise PipelineError(
                f"Granite features need a mono clip longer than {self.n_fft // 2} samples, "
                f"got shape {tuple(wave.shape)}"
            )
        spec = (
            torch.stft(
                wave,
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                win_length=self.win_length,
                window=torch.hann_window(self.win_length),
                center=True,
                pad_mode="reflect",
                normalized=False,
                onesided=True,
                return_complex=True,
            )
            .abs()
            .pow(2)
        )
        mel = spec.transpose(0, 1) @ self.filterbank()  # [frames, n_mels]
        logmel = mel.clamp(min=1e-10).log10()
        logmel = torch.maximum(logmel, logmel.max() - 8.0) / 4 + 1
        if logmel.shape[0] % 2:
            logmel = logmel[:-1]
        return logmel.reshape(1, -1, 2 * self.n_mels)

    def num_embeddings(self, n_samples: int) -> int:
        """Projector outputs for a clip of ``n_samples``: the extractor's documented count."""
        encoder_frames = (n_samples // self.hop_length + 1) // 2
        blocks = math.ceil(encoder_frames / self.projector_window_size)
        return blocks * (self.projector_window_size // self.projector_downsample_rate)
