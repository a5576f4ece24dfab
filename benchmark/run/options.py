"""Typed options of every command that runs models or claims, and the one builder from CLI flags and pytest.

Why: library functions used to take argparse Namespaces, and ``SessionOptions`` was built in four places, one of
which (``calibrate``) dropped ``--no-cache`` and ``--device-map``: accepted, then ignored. Here each command has a
frozen dataclass; :func:`options_from_args` builds it from a parsed command line and
:func:`session_options_from_pytest` from pytest's config, both through :func:`session_options`, so a flag added to
one side cannot be forgotten by the other (``tests/test_options.py`` checks that every accepted flag changes the
options object).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

#: The suite's fixed resampling seed (permutations and bootstraps), unless a run asks for another.
DEFAULT_SEED = 20251125
#: ``--dtype`` values of the CLI and of pytest (``auto``: float32 on the CPU, the model's GPU dtype on CUDA).
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class SessionOptions:
    """What a claim session needs: the probe profile, where records and latents live, how to extract."""

    profile: str = "ci"
    probes: str | None = None
    results: Path = Path("results")
    cache_dir: Path | None = None
    use_cache: bool = True
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int | None = None  # None: from free memory on a GPU, 8 on the CPU
    seed: int = DEFAULT_SEED
    progress: bool = False  # bars on a terminal, timed lines elsewhere; False: silent
    device_map: str | None = None
    templates: tuple[str, ...] | None = None  # None: every template each claim runs under


@dataclass(frozen=True)
class RunOptions:
    """``lalm-bench run``: every claim on every model, then the report in ``out``."""

    session: SessionOptions
    models: tuple[str, ...]
    out: Path = Path("reports")
    quiet: bool = False
    jobs: int = 1  # worker processes for the claims' statistics (``ClaimSession.evaluate_many``)


@dataclass(frozen=True)
class ExtractOptions:
    """``lalm-bench extract`` / ``export-latents``: one model on one probe set, optionally written to ``out``."""

    model: str
    probes: str
    session: SessionOptions
    template: str = "shared-suffix"
    out: Path | None = None
    quiet: bool = False


@dataclass(frozen=True)
class CalibrateOptions:
    """``lalm-bench calibrate``: claim controls on real latents (``session.profile`` picks their n)."""

    session: SessionOptions
    models: tuple[str, ...] = ()
    claims: tuple[str, ...] = ()
    seeds: int = 500
    first_seed: int = 0
    budget: str = "ci"
    out: Path | None = None
    jobs: int = 1
    quiet: bool = False
    #: replay each entry's recorded seeds instead of drawing new ones, carrying entries this code reproduces
    replay: bool = False
    #: seeds drawn from one population; None: the calibrated size's (``controls.POPULATION_SEEDS``). Another
    #: value is for deciding an older entry's seeds again, which must use the population size it was made with.
    seeds_per_population: int | None = None


@dataclass(frozen=True)
class ConsistencyOptions:
    """``lalm-bench consistency``: every claim on ``session.profile`` and on ``against``."""

    session: SessionOptions
    against: str = "ci-alt"
    models: tuple[str, ...] = ()
    stored: bool = False
    markdown: Path | None = None
    quiet: bool = False


Options = RunOptions | ExtractOptions | CalibrateOptions | ConsistencyOptions

#: The defaults, for comparisons ("was this option given?").
DEFAULTS = SessionOptions()


def session_options(get: Callable[[str], Any], *, progress: bool = False) -> SessionOptions:
    """The session options from a getter of option values by argparse/pytest ``dest`` name.

    A getter returns ``None`` for an option its command does not have; the default applies then.
    """

    def value(name: str, default: Any) -> Any:
        found = get(name)
        return default if found is None else found

    return SessionOptions(
        profile=value("profile", DEFAULTS.profile),
        probes=None if get("probes") is None else str(get("probes")),
        results=Path(value("results", DEFAULTS.results)),
        cache_dir=None if get("cache_dir") is None else Path(get("cache_dir")),
        use_cache=not bool(get("no_cache")),
        device=value("device", DEFAULTS.device),
        dtype=value("dtype", DEFAULTS.dtype),
        batch_size=get("batch_size"),
        seed=value("claim_seed", DEFAULT_SEED),
        progress=progress,
        device_map=get("device_map"),
        templates=tuple(get("template_filter") or ()) or None,
    )


def resolve_jobs(value: int | None) -> int:
    """``--jobs`` of ``lalm-bench run``: the number given, else one worker per CPU core this process may use
    (at most 8: past that, sending each claim's latents to a worker costs more than its statistics)."""
    if value is not None:
        return value
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, 8))


def _getter(args: argparse.Namespace) -> Callable[[str], Any]:
    return lambda name: getattr(args, name, None)


def options_from_args(args: argparse.Namespace) -> Options:
    """The typed options of a parsed ``lalm-bench`` command line (``args.command`` names the subcommand)."""
    get = _getter(args)
    quiet = bool(get("quiet"))
    session = session_options(get, progress=not quiet)
    command = args.command
    if command == "run":
        return RunOptions(
            session=session,
            models=tuple(get("model") or ()),
            out=Path(args.out),
            quiet=quiet,
            jobs=resolve_jobs(get("jobs")),
        )
    if command in ("extract", "export-latents"):
        return ExtractOptions(
            model=args.model,
            probes=str(args.probes),
            session=session,
            template=args.template,
            out=None if args.out is None else Path(args.out),
            quiet=quiet,
        )
    if command == "calibrate":
        return CalibrateOptions(
            session=session,
            models=tuple(get("model") or ()),
            claims=tuple(get("claim") or ()),
            seeds=args.seeds,
            first_seed=args.first_seed,
            budget=args.budget,
            out=None if args.out is None else Path(args.out),
            jobs=args.jobs,
            quiet=quiet,
            replay=bool(getattr(args, "replay", False)),
            seeds_per_population=get("seeds_per_population"),
        )
    if command == "consistency":
        return ConsistencyOptions(
            session=session,
            against=args.against,
            models=tuple(get("model") or ()),
            stored=bool(args.stored),
            markdown=None if args.markdown is None else Path(args.markdown),
            quiet=quiet,
        )
    raise ValueError(f"command {command!r} has no typed options (it takes explicit arguments)")


T = TypeVar("T", RunOptions, ExtractOptions, CalibrateOptions, ConsistencyOptions)


def typed_options(args: argparse.Namespace, kind: type[T]) -> T:
    """:func:`options_from_args`, checked to be of the options class the caller's command takes."""
    options = options_from_args(args)
    if not isinstance(options, kind):
        raise TypeError(f"command {args.command!r} builds {type(options).__name__}, not {kind.__name__}")
    return options


def session_options_from_pytest(config: Any) -> SessionOptions:
    """The session options of ``pytest claims/`` (the root ``conftest.py`` declares the flags).

    Progress stays off: pytest captures a fixture's stderr, so bars or log lines would only clutter failures.
    """

    def get(name: str) -> Any:
        try:
            return config.getoption(name)
        except ValueError:  # an option this pytest run does not declare (e.g. --no-cache)
            return None

    return session_options(get, progress=False)
