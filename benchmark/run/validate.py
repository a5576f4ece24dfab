"""Checks that run before any model loads: option values, output locations, model names and the hub.

Why here and all at once: a run that dies after 20 minutes of extraction on an unwritable ``--out`` or a typo'd
device loses a user's afternoon; a run that reports one problem, then the next on the rerun, loses several.
Every check returns problems as lines (``--flag VALUE: what is wrong``, ``model NAME: what is wrong``), the
command prints them all and exits 2 (``benchmark.run.exit_codes``). Probe-set rows and per-model input limits
are checked by ``benchmark.run.plan`` (they need the loaded sets and adapters).
"""

from __future__ import annotations

import os
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchError
from benchmark.models.base import ModelAdapter
from benchmark.run.options import SessionOptions

#: Seconds to wait for the hub before calling it unreachable (transformers' own retries took 143 s).
HUB_TIMEOUT_S = 3.0
DEFAULT_HUB = "https://huggingface.co"


class ValidationFailed(BenchError):
    """Problems found before any compute: one line each (``FILE:ROW: field: problem`` or ``--flag V: problem``)."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(dict.fromkeys(problems))  # each once, in order
        super().__init__("\n".join(self.problems))


def check_device(device: str) -> str | None:
    """Why ``--device`` cannot be used here, or None. ``cuda`` needs a visible CUDA device (and ``cuda:N`` the
    N-th); torch is imported only for a CUDA or MPS request."""
    if device in ("auto", "cpu"):
        return None
    kind, _, index = device.partition(":")
    if kind not in ("cuda", "mps") or (index and not index.isdigit()) or (kind == "mps" and index):
        return "unknown device; use cpu, cuda, cuda:N, mps or auto"
    import torch

    if kind == "mps":
        backend = getattr(torch.backends, "mps", None)
        return (
            None if backend is not None and backend.is_available() else "MPS is not available on this machine"
        )
    if not torch.cuda.is_available():
        build = torch.version.cuda
        why = (
            "no CUDA device is visible"
            if build
            else f"this torch ({torch.__version__}) is built without CUDA"
        )
        return f"CUDA is not available: {why}; use --device cpu or auto"
    count = torch.cuda.device_count()
    if index and int(index) >= count:
        return f"there are {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
    return None


def _nearest_existing(path: Path) -> Path:
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def check_writable(path: Path, *, folder: bool) -> str | None:
    """Why ``path`` (a folder to create or fill, or a file to write) cannot be written, or None.

    Nothing is created: the nearest existing ancestor is probed with a temporary file that is removed at once,
    because ``os.access`` says yes to root on read-only and virtual file systems.
    """
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            return "exists and is not a folder"
        if not folder and path.is_dir():
            return "is a folder; give a file name"
        probe_in = path if path.is_dir() else path.parent
    else:
        probe_in = _nearest_existing(path.parent if not folder else path)
        if not probe_in.is_dir():
            return f"cannot be created: {probe_in} is a file, not a folder"
    if not folder and path.exists() and not os.access(path, os.W_OK):
        return "the file is not writable"
    try:
        with tempfile.NamedTemporaryFile(dir=probe_in, prefix=".lalm-bench-probe-"):
            pass
    except OSError as error:
        where = "" if probe_in == path else f" (its nearest existing folder {probe_in})"
        return f"not writable{where}: {error.strerror or error}"
    return None


def check_paths(paths: Iterable[tuple[str, Path | None, bool]]) -> list[str]:
    """Problems of ``(flag, path, is_folder)`` output locations (``None`` paths are skipped)."""
    problems = []
    for flag, path, folder in paths:
        if path is None:
            continue
        why = check_writable(path, folder=folder)
        if why:
            problems.append(f"{flag} {path}: {why}")
    return problems


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> str | None:
    """None when the hub answers within ``timeout`` seconds (any HTTP status), else why not.

    The request honours the proxy variables; it runs in a daemon thread so that a hanging DNS lookup cannot hold
    the run beyond the timeout either.
    """
    endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_HUB)
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout)
            outcome.append(None)
        except urllib.error.HTTPError:
            outcome.append(None)  # it answered
        except (urllib.error.URLError, OSError, ValueError) as error:
            outcome.append(f"{endpoint} cannot be reached ({getattr(error, 'reason', error)})")

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if not outcome:
        return f"{endpoint} did not answer within {timeout:.0f} s"
    return outcome[0]


def check_weights(name: str, adapter: ModelAdapter, *, has_stored_latents: bool) -> str | None:
    """Why ``name``'s weights cannot be had before extraction starts, or None.

    Weights in place, or latents imported for every set it needs (``has_stored_latents``), are fine. Offline
    entries whose package is missing fail with what to install. Hub entries not in the local cache need the hub:
    with ``HF_HUB_OFFLINE`` set, or the hub silent for ``HUB_TIMEOUT_S`` seconds, they fail at once, naming the id.
    """
    availability = adapter.availability()
    if availability.available or has_stored_latents:
        return None
    hub_id = adapter.spec.hub_id
    if hub_id is None:
        return f"model {name}: weights are not available here: {availability.detail}"
    if hub_offline():
        return (
            f"model {name}: {hub_id} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; download "
            "it where the hub is reachable (`huggingface-cli download "
            f"{hub_id}`) or import its latents (`lalm-bench import-latents`)"
        )
    unreachable = hub_reachable()
    if unreachable:
        return (
            f"model {name}: {hub_id} is not in the local Hugging Face cache and the hub is unreachable: "
            f"{unreachable}; download it where the hub is reachable or set HF_HUB_OFFLINE=1"
        )
    return None


def option_problems(options: SessionOptions, outputs: list[tuple[str, Path | None, bool]]) -> list[str]:
    """Device and output-location problems (before anything loads); ``outputs``: (flag, path, is_folder)."""
    problems = []
    why = check_device(options.device)
    if why:
        problems.append(f"--device {options.device}: {why}")
    if options.use_cache:
        from benchmark.engine.cache import default_cache_dir

        outputs = [("--cache-dir", options.cache_dir or default_cache_dir(), True), *outputs]
    problems += check_paths(outputs)
    return problems


def pytest_usage_problems(config: Any) -> list[str]:
    """What is wrong with ``pytest claims/``'s lalm-bench options, before collection (the root ``conftest.py``
    raises pytest's usage error with these lines, exit 4). Output locations are checked when given explicitly:
    ``pytest tests/`` must not need a writable ``results/``."""
    from benchmark.run.options import DEFAULTS, DTYPE_CHOICES, session_options_from_pytest

    options = session_options_from_pytest(config)
    problems = []
    if options.batch_size is not None and options.batch_size < 1:
        problems.append(f"--batch-size {options.batch_size}: must be at least 1")
    try:
        jobs = config.getoption("claim_jobs")
    except ValueError:  # a pytest run that does not declare it
        jobs = None
    if jobs is not None and jobs < 1:
        problems.append(f"--claim-jobs {jobs}: must be at least 1")
    if options.dtype not in DTYPE_CHOICES:
        problems.append(f"--dtype {options.dtype}: unknown dtype; choose one of {', '.join(DTYPE_CHOICES)}")
    why = check_device(options.device)
    if why:
        problems.append(f"--device {options.device}: {why}")
    problems += check_paths(
        [
            ("--results", options.results if options.results != DEFAULTS.results else None, True),
            ("--cache-dir", options.cache_dir, True),
        ]
    )
    problems += _pytest_model_problems(config.getoption("model") or [], options.results)
    if options.probes:
        from benchmark.probes.catalog import resolve_probes

        try:
            resolve_probes(options.probes, None)
        except BenchError as error:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            problems += [f"--probes {options.probes}: {line}" for line in (lines[1:] or lines)]
    return problems


def _pytest_model_problems(models: list[str], results: Path) -> list[str]:
    """Unknown ``--model`` names, and hub models whose weights cannot be had (not cached, and the hub offline
    or silent), unless the results store holds latents imported for them."""
    from benchmark.claims.store import run_folder
    from benchmark.models.catalog import get_adapter

    problems = []
    for model in models:
        try:
            adapter = get_adapter(model)
        except BenchError as error:
            problems.append(f"--model {model}: {error}")
            continue
        imported = run_folder(results, model, "-", "-").parent.parent.is_dir()  # results/<model>/
        why = check_weights(model, adapter, has_stored_latents=imported)
        if why:
            problems.append(why)
    return problems
