"""What a run will extract, checked before any model loads, and how long it should take.

For each (model, probe set, template) the run needs, :func:`survey` prepares every input the way extraction
will (audio read and resampled, tokens counted under the template) without the weights, which does two jobs:

- validation: a clip longer than the model's window, a text longer than its context, a template the model
  lacks, becomes a ``FILE:ROW: field 'NAME': model M: problem`` line found now, not in ``prepare`` twenty
  minutes into the run;
- the plan: which inputs already have a latent in the cache and which must be computed.

Then :func:`time_first_batch` extracts one short batch per model and modality (real work, cached, so nothing is
wasted) and the plan's estimate is those rates times the inputs left. Adapters whose processor comes with their weights (the
hub LALMs) are checked against the limits they declare only; their cache state is known after loading.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.core.schema import ProbeSet, Sample
from benchmark.engine.cache import LatentCache, latent_key
from benchmark.engine.extract import dtype_name, extract_latents, resolve_device, resolve_dtype
from benchmark.engine.progress import ProgressReporter, format_duration
from benchmark.models.base import ModelAdapter
from benchmark.probes.io import AudioReadError, manifest_rows, read_waveform
from benchmark.run.options import SessionOptions


def max_audio_seconds(adapter: ModelAdapter) -> float | None:
    """The longest clip the adapter takes (its declared ``max_audio_seconds``), None when it declares none."""
    value = getattr(adapter, "max_audio_seconds", None)
    return float(value) if isinstance(value, int | float) and value > 0 else None


def max_text_tokens(adapter: ModelAdapter) -> int | None:
    """The longest token sequence the adapter takes (its declared ``max_text_tokens``), None when undeclared."""
    value = getattr(adapter, "max_text_tokens", None)
    return int(value) if isinstance(value, int) and value > 0 else None


@dataclass
class Survey:
    """One (model, probe set, template): its inputs, which are cached, and the problems found."""

    model: str
    probe_set: ProbeSet
    template: str
    inputs: int = 0
    cached: int | None = None  # None: unknown before the weights load (hub processors)
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)
    corrupt: int = 0
    from_store: bool = False  # latents imported into the results store: nothing to extract

    def missing_of(self, modality: str) -> list[str]:
        """The ids still to extract whose modality is ``modality`` (text and speech cost very differently)."""
        kinds = {s.id: s.modality for s in self.probe_set.samples}
        return [i for i in self.missing if kinds.get(i) == modality]

    @property
    def to_extract(self) -> int:
        if self.from_store:
            return 0
        return len(self.missing) if self.cached is not None else self.inputs


def _audio_seconds(path: Path) -> float | None:
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None
    return info.frames / info.samplerate if info.samplerate else None


def _header_notes(path: Path) -> list[str]:
    """Resampling and downmix notes from the file header alone (for adapters that cannot prepare yet)."""
    import soundfile as sf

    from benchmark.core.audio import SAMPLE_RATE

    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError):
        return []
    notes = []
    if info.channels > 1:
        notes.append(f"downmixed {info.channels} channels to mono (mean)")
    if info.samplerate != SAMPLE_RATE:
        notes.append(f"resampled from {info.samplerate} Hz to {SAMPLE_RATE} Hz with soxr (HQ)")
    return notes


def survey(
    name: str,
    adapter: ModelAdapter,
    probe_set: ProbeSet,
    template: str,
    options: SessionOptions,
    *,
    from_store: bool = False,
) -> Survey:
    """Prepare every input ``adapter`` accepts without loading weights; collect problems, notes, cache state."""
    result = Survey(model=name, probe_set=probe_set, template=template, from_store=from_store)
    accepted = [s for s in probe_set.samples if adapter.accepts(s.modality, s.language)]
    result.inputs = len(accepted)
    if from_store or not accepted:
        return result
    manifest, rows = manifest_rows(probe_set)

    def problem(sample: Sample, message: str) -> None:
        where = "audio_path" if sample.modality == "speech" else "text"
        result.problems.append(
            f"{manifest}:{rows.get(sample.id, '?')}: field {where!r}: model {name}: {message}"
        )

    for modality in sorted({s.modality for s in accepted}):
        try:
            adapter.template(template, modality)
        except KeyError as error:
            result.problems.append(f"model {name}: {error.args[0]}")
    if result.problems:
        return result
    limit_s, limit_tokens = max_audio_seconds(adapter), max_text_tokens(adapter)
    prepares = adapter.prepares_without_weights
    cache = LatentCache(options.cache_dir) if options.use_cache and prepares else None
    try:  # the cache key names the device type and dtype; a bad --device is reported by the option checks
        device = resolve_device(options.device)
        dtype = dtype_name(resolve_dtype(options.dtype, device, adapter))
    except (RuntimeError, ValueError):
        cache = None
    layers = adapter.layer_names() if prepares else []
    result.cached = 0 if prepares else None
    for sample in accepted:
        waveform = None
        if sample.modality == "speech":
            path = probe_set.audio_file(sample)
            seconds = _audio_seconds(path)
            if limit_s is not None and seconds is not None and seconds > limit_s:
                problem(sample, f"clip is {seconds:.2f} s, longer than the model's {limit_s:g}-s window")
                continue
            if not prepares:
                result.notes.update(_header_notes(path))
                continue
            try:
                waveform, notes = read_waveform(path)
            except AudioReadError as error:
                problem(sample, str(error))
                continue
            result.notes.update(notes)
        if not prepares:
            continue
        try:
            item = adapter.prepare(sample, waveform, template)
        except (ValueError, KeyError) as error:
            problem(sample, str(error.args[0] if error.args else error))
            continue
        if limit_tokens is not None and sample.modality == "text" and item.length > limit_tokens:
            problem(sample, f"{item.length} tokens under template {template!r}, over its {limit_tokens}")
            continue
        hit = None
        if cache is not None:
            key = latent_key(adapter, item, dtype=dtype, device_type=device.type, layers=layers)
            hit = cache.get(adapter.spec.name, key)
        if hit is not None and hit.latents.shape[0] == len(layers):
            result.cached += 1
        else:
            result.missing.append(sample.id)
    result.corrupt = len(cache.corrupt_entries) if cache is not None else 0
    return result


def time_first_batch(
    adapter: ModelAdapter, survey_: Survey, options: SessionOptions, *, modality: str, size: int = 8
) -> tuple[float, float] | None:
    """(load seconds, seconds per input) from one short extraction of ``size`` ``modality`` inputs still to
    compute (per modality: Whisper takes ~8x longer for a clip than for a text prompt, 1.83 s against 0.23 s).

    One input is extracted first, untimed: the first forward pass of a process pays one-off costs (allocator,
    thread pools, lazy kernels) that made a timed first batch over-estimate a run by up to 3x. The timed inputs
    are spread over the set (every k-th missing one), not the longest batch, so the rate stands for the whole
    set. Their latents go to the cache, where the run finds them. None when nothing is to extract.
    """
    candidates = survey_.missing_of(modality)
    if not candidates:
        return None
    step = max(1, len(candidates) // (size + 1))
    picked = candidates[::step][: size + 1]
    device = resolve_device(options.device)
    dtype = resolve_dtype(options.dtype, device, adapter)
    started = time.perf_counter()
    if adapter.device != device or adapter.dtype != dtype:
        adapter.load(device, dtype)
    loaded = time.perf_counter() - started
    cache = LatentCache(options.cache_dir) if options.use_cache else None

    def extract(ids: list[str]) -> float:
        wanted = set(ids)
        subset = survey_.probe_set.subset(lambda s: s.id in wanted)
        _latents, stats = extract_latents(
            adapter,
            subset,
            template=survey_.template,
            batch_size=options.batch_size or len(ids),
            device=options.device,
            dtype=options.dtype,
            cache=cache,
            progress=False,
        )
        return stats.seconds / max(stats.samples, 1)

    if len(picked) == 1:  # nothing to warm up with: the one input is the estimate
        per_input = extract(picked)
    else:
        extract(picked[:1])  # warm-up, untimed
        per_input = extract(picked[1:])
    if cache is not None:  # those inputs are cached now: the plan's counts follow
        done = set(picked)
        survey_.missing = [i for i in survey_.missing if i not in done]
        survey_.cached = (survey_.cached or 0) + len(done)
    return loaded, per_input


def plan_table(surveys: list[Survey]) -> str:
    """Models x probe sets: inputs, cached, to extract (tabulate ``simple``)."""
    from tabulate import tabulate

    rows = [
        [
            s.model,
            f"{s.probe_set.name} ({s.probe_set.profile})",
            s.template,
            s.inputs,
            "imported" if s.from_store else ("?" if s.cached is None else s.cached),
            s.to_extract,
        ]
        for s in surveys
    ]
    return tabulate(rows, headers=["model", "probe set", "template", "inputs", "cached", "to extract"])


Rates = dict[tuple[str, str], tuple[float, float]]


def inputs_left(surveys: list[Survey]) -> Counter[tuple[str, str]]:
    """Inputs still to extract per (model, modality). A clip missing under several templates counts once: the
    session extracts every template in one pass and the audio encoder, nearly all of a clip's cost, runs once
    per clip (``reports/bench_templates.json``: both templates 1.15x one). Text counts once per template (each
    template is its own forward pass)."""
    left: Counter[tuple[str, str]] = Counter()
    clips: set[tuple[str, str, str]] = set()
    for s in surveys:
        if s.from_store:
            continue
        if s.cached is None:  # cache state unknown: every accepted input, by modality
            kinds = Counter(x.modality for x in s.probe_set.samples)
            share = s.inputs / max(sum(kinds.values()), 1)
            for modality, count in kinds.items():
                left[(s.model, modality)] += round(count * share)
            continue
        left[(s.model, "text")] += len(s.missing_of("text"))
        clips.update((s.model, s.probe_set.name, sample_id) for sample_id in s.missing_of("speech"))
    left.update((model, "speech") for model, _set, _id in clips)
    return +left


def describe_estimate(surveys: list[Survey], rates: Rates) -> tuple[str, float]:
    """A sentence for the plan's time estimate (per model and modality: first batch rate x inputs left) and its
    seconds."""
    parts, total = [], 0.0
    for (model, modality), count in sorted(inputs_left(surveys).items()):
        if (model, modality) not in rates:
            parts.append(f"{model} {modality}: {count} inputs, rate unknown until its weights load")
            continue
        loaded, per_input = rates[(model, modality)]
        seconds = count * per_input
        total += seconds
        parts.append(
            f"{model} {modality}: {count} x {per_input:.2f} s = {format_duration(seconds)} (load {format_duration(loaded)})"
        )
    if not parts:
        return "nothing to extract: every latent is cached", 0.0
    return f"extraction estimate {format_duration(total)} (from timed first batches): " + "; ".join(
        parts
    ), total


def stage_plan(surveys: list[Survey], rates: Rates) -> dict[str, tuple[int, float]]:
    """The progress reporter's plan: per extraction stage label, inputs and estimated seconds per input."""
    counts: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    for (model, modality), count in inputs_left(surveys).items():
        counts[model] += count
        seconds[model] += count * rates.get((model, modality), (0.0, 1.0))[1]
    return {f"extract {m}": (n, seconds[m] / n) for m, n in counts.items() if n > 0}


def notes_summary(surveys: list[Survey]) -> list[str]:
    """The resampling/downmix notes validation collected, one line per probe set and note, with counts."""
    lines, seen = [], set()
    for s in surveys:
        key = (s.probe_set.name, s.probe_set.profile)
        if key in seen:  # the same clips under another model or template: said once
            continue
        seen.add(key)
        for note, count in sorted(s.notes.items()):
            lines.append(f"{s.probe_set.name}: {count} clip(s) {note}")
    return lines


def announce(reporter: ProgressReporter, surveys: list[Survey]) -> None:
    """Print the plan table, the notes, and corrupt cache entries found (they will be recomputed)."""
    models = sorted({s.model for s in surveys})
    sets = sorted({s.probe_set.name for s in surveys})
    reporter.line(f"plan: {len(models)} model(s) x {len(sets)} probe set(s)")
    for row in plan_table(surveys).splitlines():
        reporter.line(row)
    for line in notes_summary(surveys):
        reporter.line(f"note: {line}")
    corrupt = sum(s.corrupt for s in surveys)
    if corrupt:
        reporter.line(
            f"cache: {corrupt} corrupt entr{'y' if corrupt == 1 else 'ies'} removed; recomputed below"
        )
