"""Word error rate of Whisper's greedy transcripts on the English speech fixtures, per device.

Why: the speech claims assume the synthetic clips are intelligible speech and that each simulated device
degrades them by a plausible amount. A transcript check with real weights (whisper-base-ct2) makes that a
measured fact, reported in ``reports/fixture_wer.md``: low WER on the clean device means the audio is speech,
not noise; the other devices show how far each degrades it.

WER is word-level Levenshtein distance (substitutions + deletions + insertions) over the reference word
count, after normalisation (NFKC, lower case, punctuation removed except word-internal apostrophes and
hyphens, whitespace collapsed). Numbers are not spelt out: the shipped grid sentences contain no digits.

Reproduce: ``python -m benchmark.engine.wer --profile ci --out reports/fixture_wer.md``
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.core.schema import ProbeSet, Sample

_PUNCT = re.compile(r"[^\w\s'-]|(?<!\w)['-]|['-](?!\w)")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> list[str]:
    """Words of ``text`` for scoring: NFKC, lower case, punctuation dropped (``don't``/``well-known`` kept)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _PUNCT.sub(" ", text)
    return [word for word in _SPACE.split(text) if word]


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Minimum substitutions + deletions + insertions turning ``reference`` into ``hypothesis``."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_word in enumerate(reference, start=1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp_word in enumerate(hypothesis, start=1):
            current[j] = min(
                previous[j] + 1,  # deletion
                current[j - 1] + 1,  # insertion
                previous[j - 1] + (ref_word != hyp_word),  # substitution or match
            )
        previous = current
    return previous[-1]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(errors, reference words) after normalisation; raises when the reference has no words."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:
        raise ValueError(f"reference {reference!r} has no words after normalisation; WER is undefined")
    return edit_distance(ref, hyp), len(ref)


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus WER: total errors over total reference words (not a mean of per-utterance rates)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        raise ValueError("no utterances: WER is undefined")
    errors = words = 0
    for reference, hypothesis in zip(references, hypotheses, strict=True):
        e, n = word_errors(reference, hypothesis)
        errors += e
        words += n
    return errors / words


@dataclass
class DeviceWER:
    """Scores of one device: corpus WER, clip count, and clips transcribed exactly."""

    device: str
    clips: int = 0
    words: int = 0
    errors: int = 0
    exact: int = 0
    examples: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def wer(self) -> float:
        return self.errors / self.words if self.words else float("nan")


def english_clips(probe_set: ProbeSet, per_device: int | None = None, seed: int = 0) -> list[Sample]:
    """English speech samples; with ``per_device``, a seeded subset of that many clips per device."""
    clips = [s for s in probe_set.samples if s.modality == "speech" and s.language == "en"]
    if per_device is None:
        return clips
    rng = random.Random(seed)
    chosen: list[Sample] = []
    for device in sorted({s.device or "none" for s in clips}):
        pool = [s for s in clips if (s.device or "none") == device]
        chosen += rng.sample(pool, min(per_device, len(pool)))
    return chosen


def measure(
    probe_set: ProbeSet,
    samples: list[Sample],
    *,
    model: str = "whisper-base-ct2",
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, DeviceWER]:
    """Greedy-transcribe each sample with the Whisper adapter and score it against its text, per device."""
    import torch

    from benchmark.models.catalog import get_adapter
    from benchmark.probes.io import read_waveform

    adapter = get_adapter(model)
    transcribe = getattr(adapter, "transcribe", None)
    if transcribe is None:
        raise ValueError(f"model {model!r} has no transcribe(); WER needs a Whisper entry")
    adapter.load(torch.device(device), torch.float32)
    scores: dict[str, DeviceWER] = {}
    for index, sample in enumerate(samples):
        waveform, _notes = read_waveform(probe_set.audio_file(sample))
        hypothesis = transcribe(waveform, language=sample.language)
        errors, words = word_errors(sample.text, hypothesis)
        entry = scores.setdefault(sample.device or "none", DeviceWER(sample.device or "none"))
        entry.clips += 1
        entry.words += words
        entry.errors += errors
        entry.exact += errors == 0
        if errors and len(entry.examples) < 2:
            entry.examples.append((sample.id, sample.text, hypothesis))
        if progress:
            print(
                f"[{index + 1}/{len(samples)}] {sample.id}: {errors}/{words} {hypothesis!r}", file=sys.stderr
            )
    return scores


def to_markdown(scores: dict[str, DeviceWER], *, command: str, note: str, seconds: float) -> str:
    """The report table, the command that made it, and a few misrecognised examples."""
    lines = [
        "# Whisper-base WER on the English speech-grid fixtures",
        "",
        "Greedy transcripts of `whisper-base-ct2` (real weights, fp32, CPU) scored against each clip's sentence. "
        "Why: a low clean-device WER shows the synthetic clips are intelligible speech; the other rows show how "
        "much each simulated device degrades them (eSpeak NG voices: see the probe set's caveats).",
        "",
        f"{note} Measured in {seconds:.0f} s.",
        "",
        "| device | clips | reference words | WER | clips exact |",
        "|---|---:|---:|---:|---:|",
    ]
    for device in sorted(scores):
        s = scores[device]
        lines.append(f"| {device} | {s.clips} | {s.words} | {s.wer:.3f} | {s.exact}/{s.clips} |")
    total_errors = sum(s.errors for s in scores.values())
    total_words = sum(s.words for s in scores.values())
    lines.append(
        f"| all | {sum(s.clips for s in scores.values())} | {total_words} | "
        f"{total_errors / total_words:.3f} | {sum(s.exact for s in scores.values())}/"
        f"{sum(s.clips for s in scores.values())} |"
    )
    lines += [
        "",
        "WER: word-level edit distance over reference words after lower-casing and removing punctuation "
        "(`benchmark.engine.wer.normalise`).",
        "",
        "Reproduce:",
        "",
        f"    {command}",
        "",
        "Examples of errors:",
        "",
    ]
    for device in sorted(scores):
        for sample_id, reference, hypothesis in scores[device].examples:
            lines.append(f"- `{sample_id}`: {reference!r} -> {hypothesis!r}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.engine.wer", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--probes", default="speech-grid")
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--per-device", type=int, default=None, help="seeded subset of N clips per device")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="whisper-base-ct2")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)

    from benchmark.probes.catalog import resolve_probes

    probe_set = resolve_probes(args.probes, args.profile)
    samples = english_clips(probe_set, args.per_device, args.seed)
    started = time.perf_counter()
    scores = measure(probe_set, samples, model=args.model, progress=True)
    seconds = time.perf_counter() - started
    subset = (
        f"a seeded subset (seed {args.seed}) of {args.per_device} clips per device"
        if args.per_device
        else "every English clip"
    )
    note = f"Probe set `{args.probes}`, profile `{args.profile}`: {subset} ({len(samples)} clips)."
    command = "python -m benchmark.engine.wer " + " ".join(
        part
        for part in (
            f"--probes {args.probes}",
            f"--profile {args.profile}",
            f"--per-device {args.per_device} --seed {args.seed}" if args.per_device else "",
            f"--model {args.model}",
            f"--out {args.out}" if args.out else "",
        )
        if part
    )
    text = to_markdown(scores, command=command, note=note, seconds=seconds)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
