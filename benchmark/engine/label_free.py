"""Does a template hand a claim its answer? Find every template field that depends on a sample's labels.

A prompt filled from a label (Whisper's ``<|{language}|>`` from the sample's ``language``) makes every claim
about that label measure the prompt. Two checks, both on what the adapter itself produces:

- ``template_placeholders``: the declared ``Template`` strings (prefix, suffix, rendered) may hold only the
  content placeholders ``{text}`` and ``{audio}``; any other ``{name}`` is a field filled per sample.
- ``label_dependent_fields``: ``prepare`` the same input with each label axis changed and list what moved
  (token ids, length, last token, content span, audio key, key material). A label-free template moves nothing.

The claims side decides which axes matter for which claim; this module only reports dependence.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

from benchmark.core.schema import LABEL_AXES, Sample
from benchmark.models.base import ModelAdapter, PreparedInput

#: Placeholders a template may hold: the input's own content.
CONTENT_PLACEHOLDERS = frozenset({"text", "audio"})
_PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")

#: Axes whose change changes the input itself rather than a label of it.
_NOT_LABELS = frozenset({"modality"})
#: Stand-in languages tried for the ``language`` axis, in order (the adapter must accept them).
_LANGUAGES = ("en", "fr", "de", "ja", "zh", "es", "vi", "id")


def template_placeholders(adapter: ModelAdapter) -> list[str]:
    """``template/modality.field: {name}`` for every placeholder other than ``{text}``/``{audio}``."""
    found = []
    for name, by_modality in sorted(adapter.templates.items()):
        for modality, template in sorted(by_modality.items()):
            for field in ("prefix", "suffix", "rendered"):
                for placeholder in _PLACEHOLDER.findall(getattr(template, field)):
                    if placeholder not in CONTENT_PLACEHOLDERS:
                        found.append(f"{name}/{modality}.{field}: {{{placeholder}}}")
    return found


def _fingerprint(value: Any) -> str:
    """A hash of a prepared tensor, list or scalar that is equal exactly when the values are."""
    if hasattr(value, "detach"):  # torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    if isinstance(value, dict):
        return hashlib.sha256(
            repr(sorted((k, _fingerprint(v)) for k, v in value.items())).encode()
        ).hexdigest()
    if isinstance(value, (list, tuple)) and any(hasattr(v, "shape") for v in value):
        return hashlib.sha256("".join(_fingerprint(v) for v in value).encode()).hexdigest()
    array = np.asarray(value)
    if array.dtype == object:
        return hashlib.sha256(repr(value).encode()).hexdigest()
    return hashlib.sha256(f"{array.dtype}{array.shape}".encode() + array.tobytes()).hexdigest()


def _facts(item: PreparedInput) -> dict[str, str]:
    facts = {
        "length": str(item.length),
        "last_token_id": str(item.last_token_id),
        "content_span": str(item.content_span),
        "audio_key": str(item.audio_key),
    }
    facts.update({f"key_material.{k}": v for k, v in item.key_material.items()})
    facts.update({f"tensors.{k}": _fingerprint(v) for k, v in item.tensors.items()})
    return facts


def _alternatives(adapter: ModelAdapter, sample: Sample, axis: str) -> list[Any]:
    """Other values of one axis that the adapter accepts for this sample."""
    if axis == "language":
        pool = adapter.spec.languages or _LANGUAGES
        return [lang for lang in _LANGUAGES if lang in pool and lang != sample.language][:3]
    current = sample.label(axis)
    return [value for value in (f"{axis}-a", f"{axis}-b") if value != current]


def label_dependent_fields(
    adapter: ModelAdapter,
    sample: Sample,
    waveform: np.ndarray | None,
    templates: Iterable[str] | None = None,
    axes: Iterable[str] | None = None,
) -> list[str]:
    """``template: axis=value changes field`` for every prepared field that follows a label; empty when none.

    ``axes`` defaults to every label axis of the schema (``LABEL_AXES`` but ``modality``) plus one ``extra``
    label; ``templates`` to every template the adapter declares for the sample's modality. Works without
    weights for adapters whose ``prepares_without_weights`` is true.
    """
    names = list(templates) if templates is not None else sorted(adapter.templates)
    chosen = [a for a in (axes if axes is not None else LABEL_AXES) if a not in _NOT_LABELS]
    problems = []
    for template in names:
        if sample.modality not in adapter.templates.get(template, {}):
            continue
        base = _facts(adapter.prepare(sample, waveform, template))
        variants: list[tuple[str, Sample]] = []
        for axis in chosen:
            for value in _alternatives(adapter, sample, axis):
                variants.append((f"{axis}={value}", sample.model_copy(update={axis: value})))
        if axes is None:
            variants.append(
                ("extra.label=x", sample.model_copy(update={"extra": {**sample.extra, "label": "x"}}))
            )
        for change, variant in variants:
            if not adapter.accepts(variant.modality, variant.language):
                continue
            moved = _facts(adapter.prepare(variant, waveform, template))
            problems.extend(
                f"{template}: {change} changes {field}"
                for field in sorted(base.keys() | moved.keys())
                if base.get(field) != moved.get(field)
            )
    return problems
