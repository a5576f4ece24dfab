"""The one interface every model adapter implements.

An adapter knows how to load one model family, how to turn a ``Sample`` into the tensors that model
receives (with the declared template), and where the decoder's blocks and final norm are. It knows nothing
of claims, caching policy or batching order: the extraction engine (``benchmark.engine.extract``) hooks the modules
that ``layer_handles`` names, takes the last real token, and stops the forward after the final norm so the
LM head never runs.
"""

from __future__ import annotations

import hashlib
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from benchmark.core.schema import Modality, Sample, layer_names

if TYPE_CHECKING:
    import torch
    from torch import nn

ModelKind = Literal["lalm", "asr-proxy", "text-lm"]

#: Template names. ``shared-suffix`` is primary: text and speech end on the same suffix token(s), so the
#: last token means the same thing in both modalities. ``bare`` is the input alone (secondary variant).
TEMPLATE_NAMES: tuple[str, ...] = ("shared-suffix", "bare")


@dataclass(frozen=True)
class Template:
    """How an input of one modality becomes the model's token sequence.

    ``prefix`` and ``suffix`` are the literal strings around the content; ``rendered`` is what a person reads
    in a report (with ``{text}`` or ``{audio}`` marking the content).
    """

    name: str
    modality: Modality
    prefix: str
    suffix: str
    rendered: str
    note: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """What a model entry *is*: listed by ``lalm-bench models --json`` without loading anything."""

    name: str
    kind: ModelKind
    family: str
    hub_id: str | None
    revision: str
    modalities: tuple[Modality, ...]
    languages: tuple[str, ...] | None
    weights_source: str
    description: str
    transformers_major: int = 5
    gpu_dtype: str = "bfloat16"
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Availability:
    """Whether the weights can be loaded here, and if not, what to install or where to get them."""

    available: bool
    detail: str


@dataclass
class PreparedInput:
    """One sample, ready for the model but not yet batched.

    ``key_material`` holds hashes of exactly what the model receives (token ids, resampled waveform,
    processor config, template): the cache key is built from it, never from the sample id.
    """

    sample_id: str
    modality: Modality
    length: int
    last_token_id: int
    tensors: dict[str, Any]
    key_material: dict[str, str]
    audio_key: str | None = None
    #: ``[start, end)`` positions, in this sample's own decoder input sequence, of the input's content: its text
    #: tokens, or the expanded audio placeholder positions (the projected audio embeddings). ``None`` where the
    #: decoder input holds no content embedding (Whisper speech: the audio enters through cross-attention).
    #: The engine reads the token-identity controls from these positions of ``emb`` (CLAIMS.md): ``tok_last``
    #: (the last content position) and ``tok_mean`` (their mean).
    content_span: tuple[int, int] | None = None
    #: Why ``content_span`` is ``None`` (e.g. "audio enters through cross-attention"), carried into the latents
    #: manifest beside the NaN controls; empty means the adapter gives no span and says nothing more.
    no_content_reason: str = ""


@dataclass
class Batch:
    """Padded model inputs plus, per row, the index of the last real token in the decoder sequence."""

    model_kwargs: dict[str, Any]
    last_positions: torch.Tensor
    sample_ids: list[str]
    extras: dict[str, Any] = field(default_factory=dict)
    #: per row, the sample's ``content_span`` in the padded batch's coordinates (``None`` rows keep ``None``)
    content_spans: list[tuple[int, int] | None] | None = None


@dataclass
class LayerHandles:
    """The decoder modules the engine hooks. ``emb`` is the input of ``blocks[0]`` (after any audio merge)."""

    blocks: list[nn.Module]
    final_norm: nn.Module


class EncoderCache:
    """Interface of the audio-encoder output cache handed to adapters (keyed by audio hash).

    Implemented in ``benchmark.engine.cache``; adapters with a separate audio encoder call ``get_or_compute`` so
    that the same clip under several prompts is encoded once.
    """

    def get_or_compute(self, key: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        return compute()

    def stored(self, key: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """An encoder output worth keeping across runs (the raw encoder output, not what is derived from it):
        the engine may back this with a disk store keyed by ``ModelAdapter.encoder_fingerprint()``."""
        return compute()


class ModelAdapter(ABC):
    """Base class of every model entry. Subclasses set ``spec`` and ``templates``."""

    spec: ModelSpec
    #: template name -> modality -> Template
    templates: dict[str, dict[Modality, Template]]
    #: True when ``prepare`` and ``layer_names`` work before ``load``: the engine then loads weights only when
    #: some latent is missing from the cache (a warm rerun needs no weights). Hub adapters get their processor
    #: and layer count from ``load`` and keep the default.
    prepares_without_weights: bool = False
    #: accelerate placement for models larger than one device (``"auto"`` or a module -> device map); adapters
    #: that support it load with ``from_pretrained(device_map=...)`` instead of ``.to(device)``.
    device_map: str | dict[str, Any] | None = None

    def __init__(self) -> None:
        self.device: torch.device | None = None
        self.dtype: torch.dtype | None = None
        self.encoder_cache: EncoderCache = EncoderCache()

    # ---- description -------------------------------------------------------------------------
    @abstractmethod
    def availability(self) -> Availability:
        """Can the weights be loaded on this machine? Never downloads."""

    def accepts(self, modality: Modality, language: str) -> bool:
        if modality not in self.spec.modalities:
            return False
        return self.spec.languages is None or language in self.spec.languages

    def template(self, name: str, modality: Modality) -> Template:
        try:
            return self.templates[name][modality]
        except KeyError:
            raise KeyError(
                f"model {self.spec.name!r} declares no template {name!r} for modality {modality!r}; "
                f"declared: {sorted(self.templates)}"
            ) from None

    def processor_config(self) -> dict[str, Any]:
        """Settings of the feature extractor / tokenizer that change what the model receives."""
        return {}

    def encoder_fingerprint(self) -> str | None:
        """Hash of everything that decides the audio encoder's output for a given clip (weights, feature
        extraction, the encoding code, dtype, device type, library versions), or ``None``: then encoder outputs
        are never kept across runs. Narrower than ``source_sha256`` on purpose: a change to the prompts or the
        decoder side must not invalidate stored encoder outputs."""
        return None

    def source_sha256(self) -> str:
        """Hash of the adapter's own source files: a code change invalidates cached latents."""
        digest = hashlib.sha256()
        for klass in type(self).__mro__:
            if klass.__module__.startswith("benchmark."):
                try:
                    digest.update(Path(inspect.getfile(klass)).read_bytes())
                except (OSError, TypeError):
                    continue
        return digest.hexdigest()

    # ---- running -----------------------------------------------------------------------------
    @abstractmethod
    def load(self, device: torch.device, dtype: torch.dtype) -> None:
        """Load weights onto ``device`` in ``dtype`` and put the model in eval mode."""

    @property
    @abstractmethod
    def num_blocks(self) -> int:
        """Number of decoder blocks of the language-model part."""

    def layer_names(self) -> list[str]:
        return layer_names(self.num_blocks)

    @abstractmethod
    def layer_handles(self) -> LayerHandles:
        """The decoder blocks and final norm of the loaded model."""

    @abstractmethod
    def prepare(self, sample: Sample, waveform: np.ndarray | None, template: str) -> PreparedInput:
        """Tokenise / featurise one sample under a template. ``waveform`` is mono float32 at 16 kHz."""

    @abstractmethod
    def collate(self, items: list[PreparedInput]) -> Batch:
        """Pad a list of prepared inputs (right padding) into one batch on the adapter's device."""

    @abstractmethod
    def forward(self, batch: Batch) -> None:
        """Run the model on a batch. Outputs are captured by the engine's hooks; the return is ignored.

        Call the model so that its decoder blocks and final norm run; the engine stops the forward right
        after the final norm, so no logits are computed even when the model's own ``forward`` would.
        """

    def unload(self) -> None:  # noqa: B027 - optional hook; adapters without a model have nothing to free
        """Free the weights."""
