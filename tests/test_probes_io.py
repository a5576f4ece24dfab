"""Probe-set folders: round trips, one clear error per bad input, audio notes, and the hub loaders on local
copies that mimic each dataset's columns (no hub access here)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from benchmark.core.audio import float_wav_bytes
from benchmark.core.errors import ProbeSetError, UnknownNameError
from benchmark.core.schema import ProbeSet, Sample
from benchmark.probes import hub
from benchmark.probes.catalog import list_probe_sets, resolve_probes
from benchmark.probes.io import (
    MAX_TEXT_CHARS,
    AudioReadError,
    load_probe_set,
    read_waveform,
    read_waveform_with_note,
    require_axes,
    sha256_file,
    write_probe_set,
)


def tone(seconds: float = 0.05, rate: int = 16_000, freq: float = 220.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def wav_bytes(freq: float = 220.0, rate: int = 16_000, channels: int = 1, fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, tone(rate=rate, freq=freq, channels=channels), rate, format=fmt)
    return buffer.getvalue()


def make_set(folder: Path) -> ProbeSet:
    """Two languages x two meanings, speech and text, with speakers and genders."""
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    samples = []
    for li, lang in enumerate(("en", "fr")):
        for m in range(2):
            rel = f"audio/{lang}{m}.wav"
            sf.write(folder / rel, tone(freq=200 + 50 * m + 10 * li), 16_000)
            common = {"language": lang, "meaning_id": f"m{m}", "group_id": f"m{m}"}
            samples.append(
                Sample(
                    id=f"{lang}-{m}-s",
                    modality="speech",
                    text=f"{lang} sentence {m}",
                    audio_path=rel,
                    speaker=f"spk{li}",
                    gender=("female", "male")[li],
                    preprocessing=("resample 22050->16000", "peak-normalise"),
                    extra={"voice": f"v{li}"},
                    gain_db=-3.5,
                    **common,
                )
            )
            samples.append(
                Sample(id=f"{lang}-{m}-t", modality="text", text=f"{lang}, sentence {m}!", **common)
            )
    return ProbeSet(name="tiny", description="test set", caveats=["tiny"], samples=samples, root=str(folder))


def write_rows(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_round_trip_keeps_samples_and_hash(tmp_path: Path, fmt: str) -> None:
    original = make_set(tmp_path / "src")
    ids = [s.id for s in original.samples]
    write_probe_set(
        tmp_path / "out", original, {"ci": ids[:4], "full": ids}, {"by": "test"}, manifest_format=fmt
    )
    loaded = load_probe_set(tmp_path / "out")
    assert loaded.profile == "full"
    assert len(loaded.samples) == len(original.samples)
    by_id = {s.id: s for s in loaded.samples}
    for sample in original.samples:
        got = by_id[sample.id]
        assert got.model_dump(exclude={"audio_sha256"}) == sample.model_dump(exclude={"audio_sha256"})
        if sample.audio_path:
            assert got.audio_sha256 == sha256_file(tmp_path / "out" / sample.audio_path)
    ci = load_probe_set(tmp_path / "out", profile="ci")
    assert ci.profile == "ci" and len(ci.samples) == 4
    # the same set written in another format hashes the same
    write_probe_set(tmp_path / "jsonl", original, {"full": ids})
    assert load_probe_set(tmp_path / "jsonl").content_hash() == loaded.content_hash()


def test_folder_without_header_is_a_custom_set(tmp_path: Path) -> None:
    folder = tmp_path / "my_set"
    write_rows(
        folder,
        [
            {"id": "a", "modality": "text", "text": "hello", "language": "en"},
            {"id": "b", "modality": "text", "text": "bonjour", "language": "fr"},
        ],
    )
    probe_set = load_probe_set(folder)
    assert probe_set.name == "my_set" and probe_set.profile == "custom"
    assert [s.id for s in probe_set.samples] == ["a", "b"]


def test_csv_extra_json_and_columns(tmp_path: Path) -> None:
    folder = tmp_path / "csvset"
    folder.mkdir()
    (folder / "manifest.csv").write_text(
        "id,modality,text,language,extra,extra.voice,synthetic,preprocessing\n"
        'a,text,hello,en,"{""topic"": ""x""}",v1,yes,\n'
        "b,text,bye,en,,,false,a;b\n",
        encoding="utf-8",
    )
    samples = {s.id: s for s in load_probe_set(folder).samples}
    assert samples["a"].extra == {"topic": "x", "voice": "v1"} and samples["a"].synthetic is True
    assert samples["b"].extra == {} and samples["b"].preprocessing == ("a", "b")


# ------------------------------------------------------------------------------------------ bad inputs


def test_every_row_problem_is_listed_with_file_row_and_field(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    (folder / "audio").mkdir(parents=True)
    sf.write(folder / "audio" / "ok.wav", tone(), 16_000)
    rows = [
        {"id": "ok", "modality": "text", "text": "fine", "language": "en"},
        {"id": "lang", "modality": "text", "text": "x", "language": "xx"},
        {"id": "empty", "modality": "text", "text": "   ", "language": "en"},
        {"id": "long", "modality": "text", "text": "a" * (MAX_TEXT_CHARS + 1), "language": "en"},
        {"id": "ok", "modality": "text", "text": "again", "language": "en"},
        {
            "id": "gone",
            "modality": "speech",
            "text": "x",
            "language": "en",
            "audio_path": "audio/missing.wav",
        },
        {
            "id": "hash",
            "modality": "speech",
            "text": "x",
            "language": "en",
            "audio_path": "audio/ok.wav",
            "audio_sha256": "0" * 64,
        },
        {"id": "typo", "modality": "text", "text": "x", "language": "en", "speakr": "s1"},
    ]
    manifest = write_rows(folder, rows)
    with pytest.raises(ProbeSetError) as info:
        load_probe_set(folder)
    message = str(info.value)
    expected = {
        2: "field 'language'",
        3: "field 'text'",
        4: "over the limit",
        5: "duplicate id 'ok'",
        6: "does not exist",
        7: "field 'audio_sha256'",
        8: "field 'speakr'",
    }
    for row, fragment in expected.items():
        line = next((ln for ln in message.splitlines() if f"{manifest}:{row}:" in ln), "")
        assert fragment in line, (row, message)
    assert f"{manifest}:1:" not in message


def test_skip_returns_the_skipped_rows_with_reasons(tmp_path: Path) -> None:
    folder = tmp_path / "skip"
    write_rows(
        folder,
        [
            {"id": "a", "modality": "text", "text": "fine", "language": "en"},
            {"id": "b", "modality": "text", "text": "x", "language": "qq"},
        ],
    )
    probe_set, skipped = load_probe_set(folder, on_error="skip")
    assert [s.id for s in probe_set.samples] == ["a"]
    assert len(skipped) == 1 and skipped[0].row == 2 and skipped[0].sample_id == "b"
    assert "language" in str(skipped[0])


def test_profiles_unknown_name_and_unknown_id(tmp_path: Path) -> None:
    original = make_set(tmp_path / "src")
    write_probe_set(tmp_path / "out", original, {"full": [s.id for s in original.samples]})
    with pytest.raises(ProbeSetError, match=r"unknown profile 'nightly'.*known: full, custom"):
        load_probe_set(tmp_path / "out", profile="nightly")
    header = json.loads((tmp_path / "out" / "probeset.json").read_text())
    header["profiles"]["ci"] = ["en-0-s", "nope"]
    (tmp_path / "out" / "probeset.json").write_text(json.dumps(header))
    with pytest.raises(ProbeSetError, match=r"profiles\.ci.*'nope'"):
        load_probe_set(tmp_path / "out", profile="ci")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "empty"),
        (b"RIFF\x00\x00garbage-not-audio" * 3, "not a readable audio file"),
        ("nan", "NaN or infinite"),
        ("zero", "silent"),
        ("nosamples", "zero length"),
    ],
)
def test_unusable_audio_is_a_clear_error(tmp_path: Path, content: object, fragment: str) -> None:
    path = tmp_path / "clip.wav"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "nan":
        wave = tone()
        wave[10] = np.nan
        sf.write(path, wave, 16_000, subtype="FLOAT")
    elif content == "zero":
        sf.write(path, np.zeros(1600, dtype=np.float32), 16_000)
    else:
        sf.write(path, np.zeros(0, dtype=np.float32), 16_000)
    with pytest.raises(AudioReadError, match=fragment) as info:
        read_waveform(path)
    assert str(path) in str(info.value)
    # the same problem at load names the manifest row
    write_rows(
        tmp_path, [{"id": "a", "modality": "speech", "text": "x", "language": "en", "audio_path": "clip.wav"}]
    )
    with pytest.raises(ProbeSetError, match=r"manifest\.jsonl:1: field 'audio_path'"):
        load_probe_set(tmp_path)


def test_stereo_and_resampling_are_noted(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    sf.write(path, tone(seconds=0.5, rate=44_100, channels=2), 44_100)
    wave, notes = read_waveform(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(wave.size - 8000) <= 2
    assert any("downmixed 2 channels" in n for n in notes)
    assert any("resampled from 44100 Hz to 16000 Hz with soxr" in n for n in notes)
    _, record = read_waveform_with_note(path)
    assert record.to_dict()["source_sample_rate"] == 44_100 and record.source_channels == 2
    mono = tmp_path / "mono.wav"
    sf.write(mono, tone(), 16_000)
    assert read_waveform(mono)[1] == []


def test_require_axes_names_claim_axis_and_set(tmp_path: Path) -> None:
    probe_set = make_set(tmp_path)
    require_axes(probe_set, ["language", "modality", "meaning_id", "speaker"], "T3-text-language-early-late")
    with pytest.raises(ProbeSetError) as info:
        require_axes(probe_set, ["accent", "language"], "D1-no-demography")
    message = str(info.value)
    assert "D1-no-demography" in message and "'accent'" in message and "'tiny'" in message
    only_en = probe_set.subset(lambda s: s.language == "en")
    with pytest.raises(ProbeSetError, match=r"axis 'language': it has only one value \('en'\)"):
        require_axes(only_en, ["language"], "T3-text-language-early-late")


# -------------------------------------------------------------------------------------------- catalog


def test_catalog_lists_and_resolves(tmp_path: Path) -> None:
    original = make_set(tmp_path / "src")
    ids = [s.id for s in original.samples]
    write_probe_set(tmp_path / "fixtures" / "tiny", original, {"ci": ids[:2], "full": ids})
    entries = list_probe_sets(tmp_path / "fixtures")
    assert len(entries) == 1
    entry = entries[0]
    assert entry["name"] == "tiny" and entry["profiles"]["ci"]["n_samples"] == 2
    assert entry["profiles"]["full"]["n_samples"] == len(ids)
    assert entry["languages"] == ["en", "fr"] and entry["modalities"] == ["speech", "text"]
    assert "language" in entry["label_axes"]
    assert resolve_probes("tiny", "ci", root=tmp_path / "fixtures").profile == "ci"
    assert len(resolve_probes(tmp_path / "fixtures" / "tiny").samples) == len(ids)
    with pytest.raises(UnknownNameError, match="shipped: tiny"):
        resolve_probes("nope", root=tmp_path / "fixtures")


# --------------------------------------------------------------------------- hub loaders, local copies


@pytest.mark.parametrize("channels", [1, 2])
def test_float_wav_bytes_round_trip_and_carry_no_timestamp(channels: int) -> None:
    """Decoded hub clips are written as float WAV; their hash must not depend on when they were written."""
    wave = tone(freq=310.0, channels=channels)
    data = float_wav_bytes(wave, 22_050)
    back, rate = sf.read(io.BytesIO(data), dtype="float32")
    assert rate == 22_050 and np.array_equal(back, wave) and sf.info(io.BytesIO(data)).subtype == "FLOAT"
    chunks, at = [], 12
    while at < len(data):
        chunks.append(data[at : at + 4])
        at += 8 + int.from_bytes(data[at + 4 : at + 8], "little")
    assert chunks == [b"fmt ", b"fact", b"data"]  # no PEAK chunk, whose timestamp made two writes differ


def audio_struct(values: list[bytes], names: list[str]) -> pa.Array:
    kind = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    return pa.array([{"bytes": b, "path": n} for b, n in zip(values, names, strict=True)], type=kind)


def write_hf_parquet(path: Path, columns: dict[str, pa.Array], features: dict[str, dict]) -> None:
    """A parquet file as the hub stores it: plain arrow columns plus the `huggingface` feature metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table(columns)
    meta = {"info": {"features": features}}
    pq.write_table(table.replace_schema_metadata({b"huggingface": json.dumps(meta).encode()}), path)


AUDIO = {"_type": "Audio", "sampling_rate": 16000}
STR = {"_type": "Value", "dtype": "string"}


def test_fleurs_local_parallel_meanings(tmp_path: Path) -> None:
    root = tmp_path / "fleurs"
    for li, config in enumerate(("en_us", "fr_fr")):
        ids = [1, 1, 2, 3] if li == 0 else [1, 2, 2, 4]
        write_hf_parquet(
            root / config / "fleurs-test-00000-of-00001.parquet",
            {
                "id": pa.array(ids, pa.int32()),
                "path": pa.array([f"{config}{i}.wav" for i in range(4)]),
                "audio": audio_struct(
                    [wav_bytes(200 + 30 * i) for i in range(4)], [f"{i}.wav" for i in range(4)]
                ),
                "transcription": pa.array([f"t{i}" for i in ids]),
                "raw_transcription": pa.array([f"{config} sentence {i}." for i in ids]),
                "gender": pa.array([0, 1, 0, 1], pa.int64()),
            },
            {
                "id": {"_type": "Value", "dtype": "int32"},
                "path": STR,
                "audio": AUDIO,
                "transcription": STR,
                "raw_transcription": STR,
                "gender": {"_type": "ClassLabel", "names": ["male", "female", "other"]},
            },
        )
    probe_set = hub.load_fleurs(
        tmp_path / "out",
        seed=3,
        languages=["en", "fr"],
        n_meanings=None,
        local=root,
        cache_dir=str(tmp_path / "cache"),
    )
    assert {s.meaning_id for s in probe_set.samples} == {"fleurs-1", "fleurs-2"}  # 3 and 4 are not in both
    speech = [s for s in probe_set.samples if s.modality == "speech"]
    assert len(speech) == 4 and {s.gender for s in speech} <= {"male", "female"}
    assert len(probe_set.samples) == 8
    build = json.loads((tmp_path / "out" / "probeset.json").read_text())["build"]
    assert build["hub_id"] == "google/fleurs" and build["revision"] == "unresolved" and build["seed"] == 3
    again = hub.load_fleurs(
        tmp_path / "out2",
        seed=3,
        languages=["en", "fr"],
        n_meanings=None,
        local=root,
        cache_dir=str(tmp_path / "cache"),
    )
    assert again.content_hash() == probe_set.content_hash()


def test_vctk_local_grid(tmp_path: Path) -> None:
    rows = []
    for speaker, accent, gender in (
        ("p225", "English", "F"),
        ("p226", "Scottish", "M"),
        ("p227", "Irish", "M"),
    ):
        for ti, text in enumerate(("Please call Stella.", "Ask her to bring these things.")):
            for mic in ("mic1", "mic2"):
                rows.append(
                    {
                        "speaker_id": speaker,
                        "file": f"{speaker}_{ti:03d}_{mic}.flac",
                        "text": text,
                        "text_id": f"{ti:03d}",
                        "age": "23",
                        "gender": gender,
                        "accent": accent,
                        "region": "",
                        "comment": "",
                    }
                )
    rows.append({**rows[0], "file": "broken_name.flac"})
    audio = [wav_bytes(150 + 7 * i, rate=48_000) for i in range(len(rows))]
    columns = {k: pa.array([r[k] for r in rows]) for k in rows[0]}
    columns["audio"] = audio_struct(audio, [r["file"] for r in rows])
    write_hf_parquet(
        tmp_path / "vctk" / "data" / "train-00000-of-00001.parquet",
        columns,
        {**{k: STR for k in rows[0]}, "audio": {"_type": "Audio", "sampling_rate": 48000}},
    )
    probe_set = hub.load_vctk(
        tmp_path / "out",
        seed=0,
        n_sentences=2,
        n_speakers=3,
        local=tmp_path / "vctk",
        cache_dir=str(tmp_path / "cache"),
    )
    assert len(probe_set.samples) == 3 * 2 * 2
    require_axes(
        probe_set, ["speaker", "device", "meaning_id", "accent", "gender"], "S2-device-least-divergence"
    )
    first = next(s for s in probe_set.samples if s.speaker == "p225")  # VCTK columns -> Sample fields
    assert (first.gender, first.age_group, first.accent, first.extra) == ("female", "23-27", "English", {})
    build = json.loads((tmp_path / "out" / "probeset.json").read_text())["build"]
    assert any("broken_name" in s["reason"] for s in build["skipped"])
    _wave, notes = read_waveform(tmp_path / "out" / probe_set.samples[0].audio_path)
    assert any("48000" in n for n in notes)


def test_paws_and_paws_x_local(tmp_path: Path) -> None:
    import datasets

    def frame(lang: str) -> dict[str, list]:
        return {
            "id": [1, 2, 3, 4],
            "label": [1, 0, 1, 0],
            "sentence1": [f"{lang} a{i}" for i in range(4)],
            "sentence2": [f"{lang} b{i}" for i in range(4)],
        }

    pq.write_table(pa.table(frame("en")), tmp_path / "test.parquet")
    paws = hub.load_paws(
        tmp_path / "paws_out",
        seed=1,
        n_pairs=2,
        local=tmp_path / "test.parquet",
        cache_dir=str(tmp_path / "cache"),
    )
    assert len(paws.samples) == 4 and {s.extra["paws_label"] for s in paws.samples} == {"0", "1"}
    pairs = {}
    for s in paws.samples:
        pairs.setdefault(s.pair_id, {})[s.pair_role] = s
    for pair in pairs.values():
        partner = pair.get("paraphrase") or pair["adversarial"]
        assert (partner.meaning_id == pair["anchor"].meaning_id) == ("paraphrase" in pair)
    for lang in ("en", "de"):
        data = frame(lang)
        if lang == "de":
            data["sentence2"][0] = ""  # PAWS-X has a few empty translations
        datasets.DatasetDict({"test": datasets.Dataset.from_dict(data)}).save_to_disk(
            str(tmp_path / "px" / lang)
        )
    px = hub.load_paws_x(
        tmp_path / "px_out",
        seed=1,
        languages=["en", "de"],
        n_pairs=None,
        per_label=False,
        local=tmp_path / "px",
    )
    assert {s.language for s in px.samples} == {"en", "de"}
    build = json.loads((tmp_path / "px_out" / "probeset.json").read_text())["build"]
    assert build["skipped"] and build["skipped"][0]["reason"] == "empty text"


def cv_columns(n: int, lang: str, **extra: list) -> dict[str, pa.Array]:
    names = [f"common_voice_{lang}_{100 + i}.mp3" for i in range(n)]
    columns = {
        "client_id": pa.array([f"c{i % 2}" for i in range(n)]),
        "path": pa.array(names),
        "audio": audio_struct([wav_bytes(300 + 11 * i) for i in range(n)], names),
        "sentence": pa.array([f"{lang} sentence {i}" for i in range(n)]),
    }
    columns.update({k: pa.array(v) for k, v in extra.items()})
    return columns


def test_common_voice_covost_cvss_local_share_clip_keys(tmp_path: Path) -> None:
    feats = {
        "client_id": STR,
        "path": STR,
        "audio": AUDIO,
        "sentence": STR,
        "gender": STR,
        "age": STR,
        "accent": STR,
    }
    write_hf_parquet(
        tmp_path / "cv" / "fr" / "test" / "0000.parquet",
        cv_columns(
            4,
            "fr",
            gender=["male_masculine", "female_feminine", "", "male"],
            age=["twenties", "", "thirties", "twenties"],
            accent=["", "", "", ""],
        ),
        feats,
    )
    cv = hub.load_common_voice(
        tmp_path / "cv_out",
        seed=2,
        language="fr",
        per_label="gender",
        n_per_label=1,
        local=tmp_path / "cv",
        cache_dir=str(tmp_path / "cache"),
    )
    assert sorted(s.gender for s in cv.samples) == ["female", "male"]
    assert {s.gender: (s.age_group, s.accent) for s in cv.samples} == {
        "male": ("twenties", None),
        "female": (None, None),
    }
    cov = cv_columns(3, "fr", translation=[f"English sentence {i}" for i in range(3)])
    cov["file"] = cov.pop("path")
    write_hf_parquet(
        tmp_path / "covost" / "fr_en" / "test-00000.parquet",
        cov,
        {"client_id": STR, "file": STR, "audio": AUDIO, "sentence": STR, "translation": STR},
    )
    covost = hub.load_covost2(
        tmp_path / "cov_out",
        seed=2,
        source_language="fr",
        local=tmp_path / "covost",
        cache_dir=str(tmp_path / "cache"),
    )
    assert len(covost.samples) == 9
    speech_only = hub.load_covost2(
        tmp_path / "cov_speech",
        seed=2,
        source_language="fr",
        with_text=False,
        local=tmp_path / "covost",
        cache_dir=str(tmp_path / "cache"),
    )
    assert [s.speaker for s in speech_only.samples] == ["c0", "c1", "c0"]
    require_axes(covost, ["modality", "language", "meaning_id"], "M1-modality-separate")
    cvss = cv_columns(3, "fr")
    cvss = {
        "id": cvss["path"],
        "audio": cvss["audio"],
        "text": pa.array([f"English sentence {i}" for i in range(3)]),
    }
    write_hf_parquet(tmp_path / "cvss" / "test.parquet", cvss, {"id": STR, "audio": AUDIO, "text": STR})
    target = hub.load_cvss(
        tmp_path / "cvss_out", seed=2, source_language="fr", local=tmp_path / "cvss" / "test.parquet"
    )
    assert all(s.synthetic and s.language == "en" for s in target.samples)
    assert {s.meaning_id for s in target.samples} == {s.meaning_id for s in covost.samples}


def test_mvicuna_local_and_its_checks(tmp_path: Path) -> None:
    folder = tmp_path / "mvicuna"
    folder.mkdir()
    (folder / "en.txt").write_text("How are you?\nWhat is AI?\n", encoding="utf-8")
    (folder / "ja.txt").write_text("お元気ですか？\nAIとは何ですか？\n", encoding="utf-8")
    probe_set = hub.load_mvicuna(tmp_path / "out", seed=0, local=folder, languages=["en", "ja"])
    assert len(probe_set.samples) == 4 and len({s.meaning_id for s in probe_set.samples}) == 2
    (folder / "ja.txt").write_text("お元気ですか？\n", encoding="utf-8")
    with pytest.raises(ProbeSetError, match="line count"):
        hub.load_mvicuna(tmp_path / "out2", seed=0, local=folder, languages=["en", "ja"])
    with pytest.raises(hub.DatasetUnavailableError, match="RUCAIBox/Language-Specific-Neurons"):
        hub.load_mvicuna(tmp_path / "out3", seed=0, local=None)


def test_offline_hub_failure_names_dataset_and_local_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    def offline(*args: object, **kwargs: object) -> None:
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(hub.DatasetUnavailableError) as info:
        hub.load_fleurs(tmp_path / "out", seed=0, languages=["en"])
    message = str(info.value)
    assert "FLEURS" in message and "google/fleurs" in message and "en_us" in message
    assert "local=PATH" in message and "HF_DATASETS_OFFLINE" in message
    with pytest.raises(hub.DatasetUnavailableError, match="only be read from a local copy"):
        hub.load_cvss(tmp_path / "out", seed=0, source_language="fr")
    with pytest.raises(hub.DatasetUnavailableError, match="does not exist"):
        hub.load_paws(tmp_path / "out", seed=0, local=tmp_path / "nowhere")


def test_every_hub_dataset_has_a_loader_and_a_status() -> None:
    assert set(hub.LOADERS) == set(hub.HUB_DATASETS)
    assert hub.HUB_DATASETS["mvicuna"].status == "unconfirmed" and hub.HUB_DATASETS["mvicuna"].hub_id is None


@pytest.mark.parametrize("loader", ["load_fleurs", "load_mvicuna"])
def test_a_language_asked_for_twice_is_named(loader: str, tmp_path: Path) -> None:
    """Not a duplicate-sample-id validation error from deep inside the builder: the languages argument is named."""
    with pytest.raises(
        ProbeSetError, match=r"language\(s\) \['en'\] asked for more than once in \['en', 'fr', 'en'\]"
    ):
        getattr(hub, loader)(tmp_path / "out", seed=0, languages=["en", "fr", "en"], local=tmp_path / "none")
