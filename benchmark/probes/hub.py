"""Build probe-set folders from the public datasets the paper used.

Each loader reads one dataset (from the hub, or from a local copy with the same columns), samples rows with
an explicit seed, writes the audio as WAV and the labels as a manifest, and returns the loaded
``ProbeSet``: the same schema and the same validation as every other probe set.

Hub ids and their status (``HUB_DATASETS``): ``confirmed`` = the dataset's own repository;
``mirror`` = a maintained parquet copy, chosen because the original is script-based (which ``datasets`` 4+
no longer runs) or left the hub; ``local-only`` = needs files the hub does not serve; ``unconfirmed`` = no hub
id could be verified. Revisions stay ``unresolved`` unless the caller passes one (from a lock file); a made-up
commit is never written.

Offline use: every loader takes ``local=PATH``, a downloaded copy in any of these shapes (the columns must be
the hub dataset's): a ``save_to_disk`` folder, a folder of parquet/arrow/jsonl/csv files whose paths name
the split (``test-00000.parquet``, ``test/0000.parquet``), optionally under a sub-folder named after the
config (``en_us/``), or a single such file. Make one on a machine with hub access with
``huggingface-cli download ID --repo-type dataset --local-dir PATH`` or
``datasets.load_dataset(ID, CONFIG, split=SPLIT).save_to_disk(PATH)``.

Training overlap: Ultravox 0.5 was trained on Common Voice and CoVoST 2, so those loaders default to the
``test`` split, and every set records the split it came from.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf

from benchmark.core.audio import write_float_wav
from benchmark.core.errors import ProbeSetError
from benchmark.core.schema import ISO_639_1, PAPER_LANGUAGES, ProbeSet, Sample
from benchmark.probes.io import (
    MAX_TEXT_CHARS,
    AudioReadError,
    check_frames,
    load_probe_set,
    write_probe_set,
)

SourceConfirmation = Literal["confirmed", "mirror", "local-only", "unconfirmed"]


class DatasetUnavailableError(ProbeSetError):
    """A source dataset cannot be read here (offline, not downloaded, wrong local layout)."""


@dataclass(frozen=True)
class HubDataset:
    """Where a source dataset comes from and how sure we are of it."""

    key: str
    title: str
    hub_id: str | None
    status: SourceConfirmation
    note: str


HUB_DATASETS: dict[str, HubDataset] = {
    d.key: d
    for d in (
        HubDataset(
            "fleurs",
            "FLEURS",
            "google/fleurs",
            "confirmed",
            "script repo with a parquet export per language config (en_us, fr_fr, ...); `id` is the "
            "FLoRes sentence id, shared across languages; no speaker ids, gender only",
        ),
        HubDataset(
            "vctk",
            "VCTK 0.92",
            "sanchit-gandhi/vctk",
            "mirror",
            "parquet copy of CSTR-Edinburgh/vctk (script-based; its parquet conversion was reverted) with "
            "the script's columns; one row per microphone, the mic is in `file` (..._mic1.flac). "
            "Fallback: CSTR-Edinburgh/vctk at revision refs/convert/parquet",
        ),
        HubDataset(
            "paws",
            "PAWS (Wiki, labeled_final)",
            "google-research-datasets/paws",
            "confirmed",
            "configs labeled_final / labeled_swap / unlabeled_final; columns id, sentence1, sentence2, label",
        ),
        HubDataset(
            "paws-x",
            "PAWS-X",
            "google-research-datasets/paws-x",
            "confirmed",
            "configs en de es fr ja ko zh; test/validation human-translated from the same English pairs "
            "(same id across languages)",
        ),
        HubDataset(
            "covost2",
            "CoVoST 2",
            "fixie-ai/covost2",
            "mirror",
            "facebook/covost2 is script-based and needs a local Common Voice 4 download (data_dir); "
            "fixie-ai/covost2 is the parquet copy with audio made by Ultravox's authors (configs fr_en, "
            "en_de, ...). Ultravox 0.5 trained on it: use the test split",
        ),
        HubDataset(
            "cvss",
            "CVSS 2 (CVSS-C / CVSS-T)",
            "google/cvss",
            "local-only",
            "script-based; serves only the English target speech and text, keyed by the Common Voice 4 "
            "clip name; the source speech comes from Common Voice 4. Convert locally, pass local=PATH",
        ),
        HubDataset(
            "common_voice",
            "Common Voice 17.0",
            "fixie-ai/common_voice_17_0",
            "mirror",
            "mozilla-foundation/common_voice_* left the hub in 2025; fixie-ai/common_voice_17_0 is a parquet "
            "mirror (configs = locales: en, fr, de, es, ja, zh-CN, ...). The paper used Common Voice 4. "
            "Ultravox 0.5 trained on Common Voice: use the test split",
        ),
        HubDataset(
            "mvicuna",
            "M-Vicuna (Tang et al., 2024)",
            None,
            "unconfirmed",
            "no hub dataset id confirmed; the data are the 80 Vicuna questions in en zh fr es vi id ja, one "
            "per line, in data/mvicuna/{lang}.txt of github.com/RUCAIBox/Language-Specific-Neurons; "
            "pass that folder as local=PATH",
        ),
    )
}

#: FLEURS language configs for the paper's eight languages.
FLEURS_CONFIGS: dict[str, str] = {
    "en": "en_us",
    "fr": "fr_fr",
    "de": "de_de",
    "zh": "cmn_hans_cn",
    "ja": "ja_jp",
    "id": "id_id",
    "vi": "vi_vn",
    "es": "es_419",
}

#: Common Voice / CoVoST locale names where they differ from ISO 639-1.
CV_LOCALES: dict[str, str] = {"zh": "zh-CN"}

MVICUNA_LANGUAGES: tuple[str, ...] = ("en", "zh", "fr", "es", "vi", "id", "ja")

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(value: Any) -> str:
    return _SAFE.sub("_", str(value)).strip("_") or "x"


def _clip_key(name: str) -> str:
    """The Common Voice clip name without extensions: the key CoVoST 2, CVSS and Common Voice share."""
    return Path(str(name)).name.split(".")[0]


# ---------------------------------------------------------------------------------------- opening data


def _unavailable(
    ds: HubDataset, hub_id: str | None, config: str | None, split: str, why: str
) -> DatasetUnavailableError:
    where = f"{hub_id or '(no hub id)'}" + (f", config {config}" if config else "") + f", split {split}"
    return DatasetUnavailableError(
        f"dataset {ds.title} ({where}) is not available: {why}. To use it offline, download it on a machine "
        f"with hub access (`huggingface-cli download {hub_id or 'ID'} --repo-type dataset --local-dir PATH`, "
        f"or `datasets.load_dataset(...).save_to_disk(PATH)`) and pass it as local=PATH (CLI: --local PATH); "
        f"with HF_DATASETS_OFFLINE=1 a copy already in the datasets cache is used. Note: {ds.note}"
    )


def _mentions_split(relative: Path, split: str) -> bool:
    return re.search(rf"(^|[-_./]){re.escape(split)}([-_./]|$)", relative.as_posix()) is not None


def _open_local(ds: HubDataset, local: Path, config: str | None, split: str, cache_dir: str | None) -> Any:
    import datasets

    if not local.exists():
        raise _unavailable(ds, ds.hub_id, config, split, f"local copy {local} does not exist")
    if config and (local / config).is_dir():
        local = local / config
    if local.is_dir() and ((local / "dataset_dict.json").is_file() or (local / "state.json").is_file()):
        obj = datasets.load_from_disk(str(local))
        if isinstance(obj, datasets.DatasetDict):
            if split not in obj:
                raise _unavailable(
                    ds, ds.hub_id, config, split, f"{local} has splits {sorted(obj)}, not {split!r}"
                )
            return obj[split]
        return obj
    builders = {".parquet": "parquet", ".arrow": "arrow", ".jsonl": "json", ".json": "json", ".csv": "csv"}
    if local.is_file():
        files = [local]
    else:
        every = sorted(f for f in local.rglob("*") if f.is_file() and f.suffix in builders)
        files = [f for f in every if _mentions_split(f.relative_to(local), split)]
        if not files:
            found = ", ".join(str(f.relative_to(local)) for f in every[:5]) or "no data files"
            raise _unavailable(
                ds, ds.hub_id, config, split, f"no file for split {split!r} under {local} ({found})"
            )
    kinds = {builders.get(f.suffix) for f in files}
    if None in kinds or len(kinds) != 1:
        raise _unavailable(ds, ds.hub_id, config, split, f"mixed or unknown file types in {local}")
    try:
        return datasets.load_dataset(
            kinds.pop(), data_files={split: [str(f) for f in files]}, split=split, cache_dir=cache_dir
        )
    except Exception as exc:  # the builders raise many types for malformed files
        raise _unavailable(ds, ds.hub_id, config, split, f"cannot read {local}: {exc}") from exc


def open_dataset(
    key: str,
    *,
    config: str | None,
    split: str,
    local: str | Path | None = None,
    hub_id: str | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
) -> Any:
    """A ``datasets.Dataset`` for one config and split, with audio columns left undecoded (bytes + path)."""
    import datasets

    ds = HUB_DATASETS[key]
    hub_id = hub_id or ds.hub_id
    if local is not None:
        data = _open_local(ds, Path(local), config, split, cache_dir)
    elif hub_id is None or ds.status == "local-only":
        raise _unavailable(ds, hub_id, config, split, "it can only be read from a local copy")
    else:
        try:
            data = datasets.load_dataset(
                hub_id,
                config,
                split=split,
                cache_dir=cache_dir,
                revision=None if revision in (None, "unresolved") else revision,
            )
        except Exception as exc:  # offline, gated, renamed: all end in the same advice
            raise _unavailable(ds, hub_id, config, split, f"{type(exc).__name__}: {exc}") from exc
    for name, feature in data.features.items():
        if isinstance(feature, datasets.Audio):
            data = data.cast_column(name, datasets.Audio(decode=False))
    return data


def _metadata(data: Any, audio_column: str | None) -> list[dict[str, Any]]:
    """All columns but the audio, as dicts with their row index (audio is read only for chosen rows)."""
    columns = [c for c in data.column_names if c != audio_column]
    rows = data.select_columns(columns).to_list()
    for index, row in enumerate(rows):
        row["_index"] = index
    return rows


def _class_name(data: Any, column: str, value: Any) -> str | None:
    """ClassLabel ints become their names; strings pass; empty becomes None."""
    import datasets

    if value is None or value == "":
        return None
    feature = data.features.get(column)
    if isinstance(feature, datasets.ClassLabel) and isinstance(value, int):
        return feature.int2str(value)
    return str(value)


def _decode_audio(value: Any, base: Path | None = None) -> tuple[np.ndarray, int]:
    """Decode a hub audio cell: ``{bytes, path}``, ``{array, sampling_rate}`` or a file path."""
    if isinstance(value, dict) and value.get("bytes"):
        data, rate = sf.read(io.BytesIO(value["bytes"]), dtype="float32", always_2d=True)
    elif isinstance(value, dict) and value.get("array") is not None:
        array = np.asarray(value["array"], dtype=np.float32)
        data, rate = (array[:, None] if array.ndim == 1 else array), int(value["sampling_rate"])
    else:
        path = value.get("path") if isinstance(value, dict) else value
        if not path:
            raise AudioReadError("audio cell holds neither bytes, an array nor a path")
        path = Path(path)
        if base is not None and not path.is_absolute():
            path = base / path
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return data, int(rate)


# ------------------------------------------------------------------------------------------- sampling


def _rng(seed: int) -> np.random.Generator:
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ProbeSetError(f"seed must be an int, got {seed!r}")
    return np.random.default_rng(seed)


def sample_keys(keys: Iterable[Any], n: int | None, rng: np.random.Generator) -> list[Any]:
    """``n`` of ``keys`` without replacement, independent of the input order (keys are sorted first)."""
    ordered = sorted(set(keys), key=str)
    if n is None or n >= len(ordered):
        return ordered
    picks = rng.choice(len(ordered), size=n, replace=False)
    return sorted((ordered[i] for i in picks), key=str)


def sample_stratified(
    rows: Sequence[dict[str, Any]],
    by: Callable[[dict[str, Any]], Any],
    n_per: int,
    rng: np.random.Generator,
    key: Callable[[dict[str, Any]], Any],
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Up to ``n_per`` rows per stratum; returns the rows and the strata that had fewer than ``n_per``."""
    strata: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        strata[by(row)].append(row)
    chosen: list[dict[str, Any]] = []
    short: dict[str, int] = {}
    for stratum in sorted(strata, key=str):
        members = {key(r): r for r in strata[stratum]}
        picked = sample_keys(members, n_per, rng)
        if len(picked) < n_per:
            short[str(stratum)] = len(picked)
        chosen.extend(members[k] for k in picked)
    return chosen, short


# -------------------------------------------------------------------------------------------- writing

_Row = dict[str, Any]
_Column = str | tuple[str, Callable[[Any], Any]]
"""The Sample field one dataset column feeds: a field name (an empty cell becomes None) or (field, converter)."""


def _fields(row: _Row, columns: Mapping[str, _Column]) -> dict[str, Any]:
    """Sample label fields from one row by a column mapping, so loaders declare labels instead of coding them."""
    fields: dict[str, Any] = {}
    for column, target in columns.items():
        name, convert = (target, _or_none) if isinstance(target, str) else target
        fields[name] = convert(row.get(column))
    return fields


def _or_none(value: Any) -> Any:
    """Hub datasets write a missing label as ``""``; a Sample wants None there."""
    return value or None


@dataclass(frozen=True)
class _Table:
    """One opened config and split: row metadata to choose from, and the dataset to read chosen clips from."""

    data: Any
    rows: list[_Row]
    where: str

    def source(self, row: _Row) -> str:
        """The row's address in skip records (``fleurs/en_us/test#12``)."""
        return f"{self.where}#{row['_index']}"


@dataclass(frozen=True)
class _Request:
    """The arguments every hub loader shares: which dataset, where to read it from, which split, which seed."""

    key: str
    seed: int
    split: str
    local: str | Path | None = None
    hub_id: str | None = None
    revision: str | None = None
    cache_dir: str | None = None

    def open(self, config: str | None, audio: str | None = "audio") -> _Table:
        """One config as row metadata (audio left out: only the chosen rows' clips are read)."""
        data = open_dataset(
            self.key,
            config=config,
            split=self.split,
            local=self.local,
            hub_id=self.hub_id,
            revision=self.revision,
            cache_dir=self.cache_dir,
        )
        where = "/".join([self.key, *([config] if config is not None else []), self.split])
        return _Table(data, _metadata(data, audio), where)

    def record(self, **options: Any) -> dict[str, Any]:
        """The ``build`` block of probeset.json: enough to rebuild the set (source, revision, seed, options)."""
        ds = HUB_DATASETS[self.key]
        return {
            "source": ds.title,
            "hub_id": self.hub_id or ds.hub_id,
            "hub_status": ds.status,
            "revision": self.revision or "unresolved",
            "local": str(self.local) if self.local is not None else None,
            "seed": self.seed,
            "options": options,
            "loader": f"benchmark.probes.hub:load_{self.key.replace('-', '_')}",
        }


@dataclass
class _Builder:
    """Accumulates samples and audio for one output folder, and the rows it had to leave out."""

    out_dir: Path
    samples: list[Sample]
    skipped: list[dict[str, str]]

    @classmethod
    def create(cls, out_dir: str | Path) -> _Builder:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        return cls(out, [], [])

    def skip(self, source: str, reason: str) -> None:
        self.skipped.append({"row": source, "reason": reason})

    def text_ok(self, source: str, text: Any) -> bool:
        if not isinstance(text, str) or not text.strip():
            self.skip(source, "empty text")
            return False
        if len(text) > MAX_TEXT_CHARS:
            self.skip(source, f"text of {len(text)} characters, over {MAX_TEXT_CHARS}")
            return False
        return True

    def add_audio(self, source: str, cell: Any, relative: str) -> bool:
        """Decode, check and write one clip as WAV at its own rate; False (and a skip record) on failure."""
        target = self.out_dir / relative
        try:
            data, rate = _decode_audio(cell)
            check_frames(target, data, rate)
        except (AudioReadError, sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as exc:
            self.skip(source, f"audio unusable: {exc}")
            return False
        write_float_wav(target, data, rate)
        return True

    def keep(self, source: str, *texts: Any) -> bool:
        """Whether every text of a row is usable; stops at the first bad one, so a bad row leaves one record."""
        return all(self.text_ok(source, text) for text in texts)

    def speech(
        self,
        table: _Table,
        row: _Row,
        path: str,
        *,
        text: Any,
        checks: Sequence[Any] | None = None,
        columns: Mapping[str, _Column] | None = None,
        **fields: Any,
    ) -> bool:
        """One row as a speech sample, its clip written at ``path``; False (one skip record) if unusable.

        ``checks`` are the texts that must be usable (default ``text``); ``columns`` maps dataset columns to
        label fields; ``fields`` are the rest (id, language, meaning and group ids, constants).
        """
        source = table.source(row)
        if not self.keep(source, *((text,) if checks is None else checks)) or not self.add_audio(
            source, table.data[row["_index"]]["audio"], path
        ):
            return False
        self.add(modality="speech", text=text, audio_path=path, **_fields(row, columns or {}), **fields)
        return True

    def add(self, **fields: Any) -> None:
        self.samples.append(Sample(**fields))

    def finish(self, name: str, description: str, caveats: list[str], build: dict[str, Any]) -> ProbeSet:
        if not self.samples:
            reasons = "; ".join(f"{s['row']}: {s['reason']}" for s in self.skipped[:10]) or "no rows matched"
            raise ProbeSetError(f"probe set {name!r}: no samples were built ({reasons})")
        build = {**build, "skipped": self.skipped, "n_samples": len(self.samples)}
        probe_set = ProbeSet(
            name=name, description=description, caveats=caveats, samples=self.samples, root=str(self.out_dir)
        )
        write_probe_set(self.out_dir, probe_set, {"full": [s.id for s in self.samples]}, build)
        return load_probe_set(self.out_dir)


def _check_languages(languages: Iterable[str], allowed: Iterable[str], title: str) -> list[str]:
    languages = list(languages)
    allowed = list(allowed)
    bad = [lang for lang in languages if lang not in allowed]
    if bad:
        raise ProbeSetError(
            f"{title}: language(s) {bad} not available; available: {', '.join(sorted(allowed))}"
        )
    repeated = sorted({lang for lang in languages if languages.count(lang) > 1})
    if repeated:
        raise ProbeSetError(f"{title}: language(s) {repeated} asked for more than once in {languages}")
    return languages


# ------------------------------------------------------------------------------------------- loaders


def load_fleurs(
    out_dir: str | Path,
    *,
    seed: int,
    languages: Sequence[str] = PAPER_LANGUAGES,
    n_meanings: int | None = 20,
    per_meaning: int = 1,
    with_text: bool = True,
    split: str = "test",
    local: str | Path | None = None,
    hub_id: str | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
) -> ProbeSet:
    """Parallel speech (and its transcripts as text) in several languages: same FLEURS sentence id = same meaning.

    Only sentence ids present in every requested language are sampled, so each meaning has every language.
    """
    rng = _rng(seed)
    request = _Request("fleurs", seed, split, local, hub_id, revision, cache_dir)
    languages = _check_languages(languages, FLEURS_CONFIGS, "FLEURS")
    tables = [request.open(FLEURS_CONFIGS[lang]) for lang in languages]
    by_lang: list[dict[str, list[_Row]]] = []
    for table in tables:
        by_lang.append(defaultdict(list))
        for row in table.rows:
            by_lang[-1][str(row["id"])].append(row)
    common = set.intersection(*(set(groups) for groups in by_lang))
    if not common:
        raise ProbeSetError(f"FLEURS {split}: no sentence id is present in all of {languages}")
    meanings = sample_keys(common, n_meanings, rng)
    out = _Builder.create(out_dir)
    for lang, table, groups in zip(languages, tables, by_lang, strict=True):
        gender: dict[str, _Column] = {"gender": ("gender", partial(_class_name, table.data, "gender"))}
        for sid in meanings:
            rows = {str(r.get("path") or r["_index"]): r for r in groups[sid]}
            meaning = {"language": lang, "meaning_id": f"fleurs-{sid}", "group_id": f"fleurs-{sid}"}
            text_written = not with_text  # the transcript goes in once, from the meaning's first usable clip
            for k, key in enumerate(sample_keys(rows, per_meaning, rng)):
                row = rows[key]
                text = row.get("raw_transcription") or row.get("transcription")
                path, ident = f"audio/{lang}/{_safe(sid)}_{k}.wav", f"fleurs-{lang}-{_safe(sid)}-{k}"
                written = out.speech(table, row, path, id=ident, text=text, columns=gender, **meaning)
                if written and not text_written:
                    out.add(id=f"fleurs-{lang}-{_safe(sid)}-text", modality="text", text=text, **meaning)
                    text_written = True
    build = request.record(
        languages=list(languages),
        split=split,
        n_meanings=n_meanings,
        per_meaning=per_meaning,
        with_text=with_text,
    )
    caveats = [
        "FLEURS has no speaker ids: speaker-level claims cannot use this set",
        f"split {split}; one meaning = one FLoRes sentence id, read by different people per language",
    ]
    return out.finish(f"fleurs-{split}", "FLEURS parallel speech and transcripts", caveats, build)


def _age_group(age: Any) -> str | None:
    """VCTK ages as five-year bands (18-22, 23-27, ...): the corpus spans 18-38, so bands keep groups populated."""
    try:
        value = int(str(age).strip())
    except ValueError:
        return None
    low = 18 + 5 * ((value - 18) // 5)
    return f"{low}-{low + 4}"


def _norm_text(text: str) -> str:
    return re.sub(r"[^\w]+", " ", text.lower()).strip()


#: VCTK column -> Sample field: gender is F/M there, ages become bands, a region (if any) goes to extra.
VCTK_COLUMNS: dict[str, _Column] = {
    "speaker_id": ("speaker", str),
    "gender": ("gender", lambda g: {"F": "female", "M": "male"}.get(str(g).upper(), g) or None),
    "age": ("age_group", _age_group),
    "accent": "accent",
    "region": ("extra", lambda r: {"region": str(r)} if r else {}),
}


def load_vctk(
    out_dir: str | Path,
    *,
    seed: int,
    n_sentences: int = 10,
    n_speakers: int | None = 8,
    per_accent: int | None = None,
    mics: Sequence[str] = ("mic1", "mic2"),
    split: str = "train",
    local: str | Path | None = None,
    hub_id: str | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
) -> ProbeSet:
    """A content x speaker x device grid: sentences read by every chosen speaker, through every chosen mic.

    Sentences are matched by normalised text, not by ``text_id`` (only the first two dozen ids are the same
    sentence for every speaker). Speakers are drawn at random (``n_speakers``) or per accent (``per_accent``).
    """
    rng = _rng(seed)
    request = _Request("vctk", seed, split, local, hub_id, revision, cache_dir)
    table = request.open(None)
    out = _Builder.create(out_dir)
    cells: dict[tuple[str, str, str], _Row] = {}
    speakers: dict[str, _Row] = {}
    for row in table.rows:
        mic = re.search(r"_(mic[12])\b", str(row.get("file", "")))
        if mic is None:
            out.skip(table.source(row), f"no mic1/mic2 in file name {row.get('file')!r}")
            continue
        if not isinstance(row.get("text"), str) or not row["text"].strip():
            out.skip(table.source(row), "empty text")
            continue
        speaker = str(row["speaker_id"])
        cells[(speaker, _norm_text(row["text"]), mic.group(1))] = row
        speakers[speaker] = row
    complete: dict[str, set[str]] = defaultdict(set)
    for speaker, norm, _mic in cells:
        if all((speaker, norm, m) in cells for m in mics):
            complete[speaker].add(norm)
    pool = [speakers[s] for s in complete]
    if per_accent is not None:
        chosen, short = sample_stratified(
            pool, lambda r: r.get("accent"), per_accent, rng, key=lambda r: str(r["speaker_id"])
        )
        chosen_speakers = [str(r["speaker_id"]) for r in chosen]
    else:
        chosen_speakers, short = sample_keys(complete, n_speakers, rng), {}
    if not chosen_speakers:
        raise ProbeSetError("VCTK: no speaker has every requested microphone " + str(list(mics)))
    shared = set.intersection(*(complete[s] for s in chosen_speakers))
    if not shared:
        raise ProbeSetError(
            f"VCTK: the {len(chosen_speakers)} chosen speakers share no sentence; choose fewer"
        )
    for si, norm in enumerate(sample_keys(shared, n_sentences, rng)):
        for speaker in chosen_speakers:
            for mic in mics:
                row = cells[(speaker, norm, mic)]
                out.speech(
                    table,
                    row,
                    f"audio/{_safe(speaker)}/{si:03d}_{mic}.wav",
                    id=f"vctk-{_safe(speaker)}-{si:03d}-{mic}",
                    text=row["text"].strip(),
                    checks=(row["text"],),
                    meaning_id=f"vctk-s{si:03d}",
                    group_id=f"vctk-s{si:03d}",
                    language="en",
                    device=mic,
                    columns=VCTK_COLUMNS,
                )
    build = request.record(
        n_sentences=n_sentences,
        n_speakers=n_speakers,
        per_accent=per_accent,
        mics=list(mics),
        split=split,
        accents_short=short,
        sentences_available=len(shared),
    )
    caveats = [
        "VCTK's devices are its two studio microphones (mic1 omni, mic2 small-diaphragm), same room",
        "ages are grouped in five-year bands; VCTK speakers are 18-38",
    ]
    return out.finish("vctk", "VCTK content x speaker x microphone grid", caveats, build)


def _paws_pairs(out: _Builder, table: _Table, ids: set[str], lang: str, prefix: str) -> None:
    """Each chosen row as two text samples: the anchor, and its paraphrase (same meaning) or adversarial partner."""
    for row in (r for r in table.rows if str(r["id"]) in ids):
        if not out.keep(table.source(row), row.get("sentence1"), row.get("sentence2")):
            continue
        pid, label = _safe(row["id"]), int(row["label"])
        pair = f"{prefix}-{pid}"
        common = {"modality": "text", "language": lang, "group_id": pair, "pair_id": pair}
        extra = {"paws_label": str(label)}
        out.add(
            id=f"{prefix}-{lang}-{pid}-a",
            text=row["sentence1"],
            meaning_id=f"{pair}-a",
            pair_role="anchor",
            extra=extra,
            **common,
        )
        out.add(
            id=f"{prefix}-{lang}-{pid}-b",
            text=row["sentence2"],
            meaning_id=f"{pair}-a" if label == 1 else f"{pair}-b",
            pair_role="paraphrase" if label == 1 else "adversarial",
            extra=extra,
            **common,
        )


def _paws_choose(
    rows: list[_Row], n_pairs: int | None, per_label: bool, rng: np.random.Generator
) -> set[str]:
    if per_label and n_pairs is not None:
        chosen, _ = sample_stratified(
            rows, lambda r: int(r["label"]), n_pairs // 2, rng, key=lambda r: str(r["id"])
        )
        return {str(r["id"]) for r in chosen}
    return set(sample_keys((str(r["id"]) for r in rows), n_pairs, rng))


def load_paws(
    out_dir: str | Path,
    *,
    seed: int,
    n_pairs: int | None = 50,
    per_label: bool = True,
    config: str = "labeled_final",
    split: str = "test",
    local: str | Path | None = None,
    hub_id: str | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
) -> ProbeSet:
    """English paraphrase pairs (label 1) and adversarial word-scrambled non-paraphrases (label 0).

    ``per_label`` draws half the pairs from each label. Each pair is an anchor and its partner; partners of
    paraphrases share the anchor's ``meaning_id``.
    """
    rng = _rng(seed)
    request = _Request("paws", seed, split, local, hub_id, revision, cache_dir)
    table = request.open(config, audio=None)
    ids = _paws_choose(table.rows, n_pairs, per_label, rng)
    out = _Builder.create(out_dir)
    _paws_pairs(out, table, ids, "en", "paws")
    build = request.record(n_pairs=n_pairs, per_label=per_label, config=config, split=split)
    caveats = ["English Wikipedia sentences; adversarial partners share nearly all words"]
    return out.finish(f"paws-{config}-{split}", "PAWS paraphrase and adversarial pairs", caveats, build)


def load_paws_x(
    out_dir: str | Path,
    *,
    seed: int,
    languages: Sequence[str] = ("en", "de", "es", "fr", "ja", "zh"),
    n_pairs: int | None = 50,
    per_label: bool = True,
    split: str = "test",
    local: str | Path | None = None,
    hub_id: str | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
) -> ProbeSet:
    """PAWS-X pairs in several languages; the same pair id in every language (translations of one pair)."""
    rng = _rng(seed)
    request = _Request("paws-x", seed, split, local, hub_id, revision, cache_dir)
    languages = _check_languages(languages, ("en", "de", "es", "fr", "ja", "ko", "zh"), "PAWS-X")
    by_lang = {lang: request.open(lang, audio=None) for lang in languages}  # a language asked twice: once
    common = set.intersection(*({str(r["id"]) for r in table.rows} for table in by_lang.values()))
    ids = _paws_choose(
        [r for r in by_lang[languages[0]].rows if str(r["id"]) in common], n_pairs, per_label, rng
    )
    out = _Builder.create(out_dir)
    for lang, table in by_lang.items():
        _paws_pairs(out, table, ids, lang, "pawsx")
    build = request.record(languages=list(languages), n_pairs=n_pairs, per_label=per_label, split=split)
    caveats = ["meaning_id is per pair and language-independent: the same pair id in every language"]
    return out.finish(f"paws-x-{split}", "PAWS-X parallel paraphrase pairs", caveats, build)


def _cv_gender(value: Any) -> str | None:
    """Common Voice 17 writes ``male_masculine``/``female_feminine``; older releases ``male``/``female``."""
    if not value:
        return None
    text = str(value).lower()
    return "male" if text.startswith("male") else "female" if text.startswith("female") else text


#: Common Voice column -> Sample field (self-reported labels; empty cells become None).
CV_COLUMNS: dict[str, _Column] = {
    "client_id": "speaker",
    "gender": ("gender", _cv_gender),
    "age": "age_group",
    "accent": "accent",
}


def _cv_speech(
    out: _Builder, table: _Table, row: _Row, key: str, language: str, prefix: str, text: Any, **fields: Any
) -> bool:
    """A clip as speech keyed by its Common Voice name (meaning ``cv-<clip>``), so the three sets line up."""
    path, ident = f"audio/{language}/{_safe(key)}.wav", f"{prefix}-{language}-{_safe(key)}"
    meaning = {"meaning_id": f"cv-{key}", "group_id": f"cv-{key}"}
    return out.speech(table, row, path, id=ident, text=text, language=language, **meaning, **fields)


def load_common_voice(
    out_dir: str | Path,
    *,
    seed: int,
    language: str,
    n: int | None = 50,
    per_label: str | None = None,
    n_per_label: int = 10,
    split: str = "test",
    local: str | Path | None = None,
    hub_id: str | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
) -> ProbeSet:
    """Common Voice clips of one language, with speaker, gender, age and accent labels where given.

    ``per_label`` (``gender``, ``age`` or ``accent``) draws ``n_per_label`` clips per value instead of ``n``.
    """
    rng = _rng(seed)
    request = _Request("common_voice", seed, split, local, hub_id, revision, cache_dir)
    _check_languages([language], ISO_639_1, "Common Voice")
    table = request.open(CV_LOCALES.get(language, language))
    keyed = {_clip_key(r["path"]): r for r in table.rows}
    if per_label is not None:
        if per_label not in {"gender", "age", "accent"}:
            raise ProbeSetError(f"Common Voice: per_label must be gender, age or accent, not {per_label!r}")

        def label(row: _Row) -> Any:
            return _cv_gender(row.get("gender")) if per_label == "gender" else row.get(per_label)

        labelled = [r for r in table.rows if label(r)]
        chosen, short = sample_stratified(
            labelled, label, n_per_label, rng, key=lambda r: _clip_key(r["path"])
        )
        keys = [_clip_key(r["path"]) for r in chosen]
    else:
        keys, short = sample_keys(keyed, n, rng), {}
    out = _Builder.create(out_dir)
    for key in keys:
        row = keyed[key]
        _cv_speech(out, table, row, key, language, "cv", row.get("sentence"), columns=CV_COLUMNS)
    build = request.record(
        language=language, n=n, per_label=per_label, n_per_label=n_per_label, split=split, strata_short=short
    )
    caveats = [
        f"split {split}: Ultravox 0.5 trained on Common Voice (train split)",
        "gender, age and accent are self-reported and often missing",
    ]
    return out.finish(f"common-voice-{language}-{split}", "Common Voice clips", caveats, build)


def load_covost2(
    out_dir: str | Path,
    *,
    seed: int,
    source_language: str,
    target_language: str = "en",
    n: int | None = 50,
    with_text: bool = True,
    split: str = "test",
    local: str | Path | None = None,
    hub_id: str | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
) -> ProbeSet:
    """Source speech with its transcript and translation (text): one meaning in two languages and two modalities."""
    rng = _rng(seed)
    request = _Request("covost2", seed, split, local, hub_id, revision, cache_dir)
    _check_languages([source_language, target_language], ISO_639_1, "CoVoST 2")
    config = f"{CV_LOCALES.get(source_language, source_language)}_{CV_LOCALES.get(target_language, target_language)}"
    table = request.open(config)
    keyed = {_clip_key(r.get("file") or r.get("id")): r for r in table.rows}
    out = _Builder.create(out_dir)
    for key in sample_keys(keyed, n, rng):
        row = keyed[key]
        sentence, translation = row.get("sentence"), row.get("translation")
        checks, columns = (sentence, translation), {"client_id": "speaker"}
        if not _cv_speech(
            out, table, row, key, source_language, "covost2", sentence, checks=checks, columns=columns
        ):
            continue
        if with_text:
            for lang, text in ((source_language, sentence), (target_language, translation)):
                out.add(
                    id=f"covost2-{lang}-{_safe(key)}-text",
                    modality="text",
                    text=text,
                    language=lang,
                    meaning_id=f"cv-{key}",
                    group_id=f"cv-{key}",
                    pair_id=f"cv-{key}",
                    pair_role="transcript" if lang == source_language else "translation",
                )
    build = request.record(config=config, n=n, with_text=with_text, split=split)
    caveats = [
        f"split {split}: Ultravox 0.5 trained on CoVoST 2 (train split)",
        "translations are single human references",
    ]
    return out.finish(
        f"covost2-{config}-{split}", "CoVoST 2 speech, transcripts and translations", caveats, build
    )


def load_cvss(
    out_dir: str | Path,
    *,
    seed: int,
    source_language: str,
    variant: Literal["cvss_c", "cvss_t"] = "cvss_c",
    n: int | None = 50,
    config: str | None = None,
    split: str = "test",
    local: str | Path | None = None,
    hub_id: str | None = None,
    revision: str | None = None,
    cache_dir: str | None = None,
) -> ProbeSet:
    """CVSS English target speech (synthesised), keyed like Common Voice so it pairs with the source clips.

    Columns expected: ``id`` (Common Voice clip name), ``audio``, ``text`` (the English translation). The
    config name of the hub script is an assumption (``{variant}_{lang}_en``); pass ``config`` to override.
    """
    rng = _rng(seed)
    request = _Request("cvss", seed, split, local, hub_id, revision, cache_dir)
    _check_languages([source_language], ISO_639_1, "CVSS")
    config = config or f"{variant}_{CV_LOCALES.get(source_language, source_language)}_en"
    table = request.open(config)
    keyed = {_clip_key(r["id"]): r for r in table.rows}
    out = _Builder.create(out_dir)
    voice = "single-voice" if variant == "cvss_c" else "multi-voice"
    labels = {"synthetic": True, "voice_set": voice, "variant": variant}
    for key in sample_keys(keyed, n, rng):
        row = keyed[key]
        _cv_speech(out, table, row, key, "en", f"cvss-{variant}", row.get("text"), **labels)
    build = request.record(source_language=source_language, variant=variant, config=config, n=n, split=split)
    caveats = [
        "CVSS target speech is synthetic (CVSS-C: one canonical voice; CVSS-T: voice transferred)",
        "meaning_id cv-<clip> matches Common Voice / CoVoST 2 sets built from the same clips",
    ]
    return out.finish(
        f"cvss-{variant}-{source_language}-{split}", "CVSS English target speech", caveats, build
    )


def load_mvicuna(
    out_dir: str | Path,
    *,
    seed: int,
    local: str | Path | None,
    languages: Sequence[str] = MVICUNA_LANGUAGES,
    n: int | None = None,
) -> ProbeSet:
    """The multilingual Vicuna questions as parallel text: line i of every ``{lang}.txt`` is one meaning."""
    rng = _rng(seed)
    ds = HUB_DATASETS["mvicuna"]
    languages = _check_languages(languages, MVICUNA_LANGUAGES, "M-Vicuna")
    if local is None:
        raise _unavailable(ds, None, None, "all", "no hub id is confirmed for it")
    folder = Path(local)
    lines: dict[str, list[str]] = {}
    for lang in languages:
        path = folder / f"{lang}.txt"
        if not path.is_file():
            raise _unavailable(ds, None, None, "all", f"{path} does not exist")
        lines[lang] = path.read_text(encoding="utf-8").rstrip("\n").split("\n")
    counts = {lang: len(v) for lang, v in lines.items()}
    if len(set(counts.values())) != 1:
        raise ProbeSetError(
            f"M-Vicuna files in {folder} differ in line count {counts}: lines must be parallel"
        )
    chosen = sample_keys(range(next(iter(counts.values()))), n, rng)
    out = _Builder.create(out_dir)
    for lang in languages:
        for i in chosen:
            text, meaning = lines[lang][i].strip(), f"mvicuna-{i + 1:03d}"
            if out.keep(f"{folder / (lang + '.txt')}:{i + 1}", text):
                out.add(
                    id=f"mvicuna-{lang}-{i + 1:03d}",
                    modality="text",
                    text=text,
                    language=lang,
                    meaning_id=meaning,
                    group_id=meaning,
                )
    build = _Request("mvicuna", seed, "all", local).record(languages=list(languages), n=n)
    caveats = ["no German: M-Vicuna covers en zh fr es vi id ja", "questions of mixed length and register"]
    return out.finish("mvicuna", "M-Vicuna parallel questions", caveats, build)


#: Loader by dataset key (for a CLI ``lalm-bench probes fetch KEY``).
LOADERS: dict[str, Callable[..., ProbeSet]] = {
    "fleurs": load_fleurs,
    "vctk": load_vctk,
    "paws": load_paws,
    "paws-x": load_paws_x,
    "covost2": load_covost2,
    "cvss": load_cvss,
    "common_voice": load_common_voice,
    "mvicuna": load_mvicuna,
}
