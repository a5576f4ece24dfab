"""Small probe-set folders written from scratch for tests of hostile inputs and custom sets (no fixtures used)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

SENTENCES = {
    "m1": {"en": "The cat sleeps on the warm roof", "fr": "Le chat dort sur le toit chaud",
           "de": "Die Katze schläft auf dem warmen Dach", "es": "El gato duerme en el tejado caliente"},
    "m2": {"en": "We bought fresh bread this morning", "fr": "Nous avons acheté du pain frais ce matin",
           "de": "Wir haben heute Morgen frisches Brot gekauft",
           "es": "Compramos pan fresco esta mañana"},
    "m3": {"en": "The train to the city leaves at noon", "fr": "Le train pour la ville part à midi",
           "de": "Der Zug in die Stadt fährt mittags ab", "es": "El tren a la ciudad sale al mediodía"},
}  # fmt: skip


def text_row(sample_id: str, text: str, language: str = "en", **labels: Any) -> dict[str, Any]:
    return {"id": sample_id, "modality": "text", "text": text, "language": language, **labels}


def speech_row(sample_id: str, audio_path: str, language: str = "en", **labels: Any) -> dict[str, Any]:
    return {
        "id": sample_id,
        "modality": "speech",
        "text": f"transcript of {sample_id}",
        "audio_path": audio_path,
        "language": language,
        **labels,
    }


def write_manifest(folder: Path, rows: list[dict[str, Any]], header: dict[str, Any] | None = None) -> Path:
    """``folder/manifest.jsonl`` from ``rows`` (and ``probeset.json`` from ``header`` when given)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.jsonl").write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
    )
    if header is not None:
        (folder / "probeset.json").write_text(json.dumps(header), encoding="utf-8")
    return folder


def tone(seconds: float = 0.5, rate: int = 16_000, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_clip(path: Path, data: np.ndarray, rate: int = 16_000, subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, subtype=subtype)
    return path


def parallel_text_set(
    folder: Path, meanings: int = 2, languages: tuple[str, ...] = ("en", "fr", "de", "es"), **options: bool
) -> Path:
    """``meanings`` x ``languages`` translations; ``meaning_id=False`` leaves the meaning labels out."""
    rows = []
    for meaning in list(SENTENCES)[:meanings]:
        for language in languages:
            labels = {"meaning_id": meaning, "group_id": meaning} if options.get("meaning_id", True) else {}
            rows.append(text_row(f"{meaning}-{language}", SENTENCES[meaning][language], language, **labels))
    return write_manifest(folder, rows)


def speech_set(folder: Path, clips: dict[str, np.ndarray], rate: int = 16_000) -> Path:
    """One speech row per clip (``audio/<id>.wav``), each its own meaning."""
    rows = []
    for index, (sample_id, data) in enumerate(clips.items()):
        write_clip(folder / "audio" / f"{sample_id}.wav", data, rate)
        rows.append(speech_row(sample_id, f"audio/{sample_id}.wav", meaning_id=f"m{index}"))
    return write_manifest(folder, rows)
