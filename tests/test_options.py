"""Typed options: every flag a subcommand (or ``pytest claims/``) accepts reaches its options object.

Why flag by flag: ``calibrate`` once accepted ``--no-cache`` and ``--device-map`` and then ignored them, because
its ``SessionOptions`` was built by hand in a fourth place. Here each accepted flag is given a non-default value
on its own, and the options built from it must differ from the defaults' options.
"""

from __future__ import annotations

import argparse
import ast
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from benchmark.cli.main import build_parser
from benchmark.run.options import (
    CalibrateOptions,
    ConsistencyOptions,
    ExtractOptions,
    RunOptions,
    SessionOptions,
    options_from_args,
    session_options_from_pytest,
)

REPO = Path(__file__).resolve().parents[1]

#: Subcommands that run models or claims take typed options; the minimal arguments each needs to parse.
TYPED: dict[str, tuple[type, list[str]]] = {
    "run": (RunOptions, []),
    "extract": (ExtractOptions, ["--model", "m0", "--probes", "p0"]),
    "export-latents": (ExtractOptions, ["--model", "m0", "--probes", "p0", "--out", "o0"]),
    "calibrate": (CalibrateOptions, []),
    "consistency": (ConsistencyOptions, []),
}
#: Subcommands that call one library function with explicit keyword arguments (no options object).
UNTYPED = {
    "models",
    "probes",
    "fixtures",
    "import-latents",
    "lock",
    "check",
    "calibration-report",
    "report",
    "expectations",
    "baselines",
    "nightly",
}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _other_value(action: argparse.Action, current: Any) -> list[str]:
    """Command-line tokens that give ``action`` a value other than ``current``."""
    flag = action.option_strings[0]
    if isinstance(action, argparse._StoreTrueAction):
        return [flag]
    if action.choices:
        choice = next(c for c in action.choices if c != current)
        return [flag, str(choice)]
    if action.type is not None and getattr(action.type, "__name__", "") in ("int", "_positive_int"):
        return [flag, "9" if current != 9 else "7"]
    return [flag, f"/tmp/other-{action.dest}"]


def _parse(command: str, argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args([command, *argv])


def _flag_cases() -> list[tuple[str, argparse.Action]]:
    cases = []
    for command, sub in _subparsers().items():
        if command not in TYPED:
            continue
        for action in sub._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                cases.append((command, action))
    return cases


def test_every_subcommand_is_typed_or_listed_as_explicit() -> None:
    assert set(_subparsers()) == set(TYPED) | UNTYPED


@pytest.mark.parametrize(
    ("command", "action"),
    _flag_cases(),
    ids=[f"{c}{a.option_strings[0]}" for c, a in _flag_cases()],
)
def test_each_flag_reaches_the_options(command: str, action: argparse.Action) -> None:
    kind, required = TYPED[command]
    base = options_from_args(_parse(command, required))
    assert isinstance(base, kind)
    current = getattr(_parse(command, required), action.dest)
    argv = [token for token in required]
    flag = action.option_strings[0]
    if flag in argv:  # a required flag: change its value in place
        index = argv.index(flag)
        argv[index + 1] = argv[index + 1] + "-other"
    else:
        argv += _other_value(action, current)
    changed = options_from_args(_parse(command, argv))
    assert asdict(changed) != asdict(base), f"{command} {flag}: accepted, but the options object is unchanged"


def test_calibrate_keeps_no_cache_and_device_map() -> None:
    """The regression that motivated typed options."""
    options = options_from_args(_parse("calibrate", ["--no-cache", "--device-map", "auto"]))
    assert isinstance(options, CalibrateOptions)
    assert options.session.use_cache is False and options.session.device_map == "auto"


def test_options_are_frozen() -> None:
    options = SessionOptions()
    with pytest.raises(AttributeError):
        options.profile = "full"  # type: ignore[misc]


# ------------------------------------------------------------------------------------------- pytest side


class _RecordingGroup:
    def __init__(self, into: dict[str, dict[str, Any]]) -> None:
        self.into = into

    def addoption(self, *names: str, **kwargs: Any) -> None:
        dest = kwargs.get("dest") or names[0].lstrip("-").replace("-", "_")
        self.into[dest] = {"flag": names[0], **kwargs}


class _RecordingParser(_RecordingGroup):
    def getgroup(self, *_args: Any, **_kwargs: Any) -> _RecordingGroup:
        return self


class _Config:
    """What ``session_options_from_pytest`` reads of pytest's config: ``getoption`` by dest name."""

    def __init__(self, declared: dict[str, dict[str, Any]], override: dict[str, Any]) -> None:
        self.values = {dest: spec.get("default") for dest, spec in declared.items()} | override

    def getoption(self, name: str) -> Any:
        if name not in self.values:
            raise ValueError(f"no option named {name!r}")
        return self.values[name]


def _pytest_options() -> dict[str, dict[str, Any]]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("root_conftest", REPO / "conftest.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    declared: dict[str, dict[str, Any]] = {}
    module.pytest_addoption(_RecordingParser(declared))
    return declared


#: pytest flags that are not session options, and where they go instead.
PYTEST_ELSEWHERE = {
    "model": "claims/conftest.py selected_models() parametrises the tests by model",
    "optin": "tests/conftest.py's skip policy",
    "strict_claims": "benchmark.run.outcome: how a decayed record is reported, not how it is computed",
    "claim_jobs": "claims/conftest.py: worker processes for the statistics (records equal a serial run's)",
}


def _pytest_value(spec: dict[str, Any]) -> Any:
    if spec.get("choices"):
        return next(c for c in spec["choices"] if c != spec.get("default"))
    if spec.get("type") is int:
        return 9
    if spec.get("type") is Path:
        return Path("/tmp/other")
    if spec.get("action") == "store_true":
        return True
    return "other"


def test_pytest_options_left_out_of_the_session_exist() -> None:
    """The exceptions below name real options (a renamed flag must not hide behind a stale exception)."""
    assert set(PYTEST_ELSEWHERE) <= set(_pytest_options())


@pytest.mark.parametrize("dest", sorted(set(_pytest_options()) - set(PYTEST_ELSEWHERE)))
def test_each_pytest_option_reaches_the_session_options(dest: str) -> None:
    declared = _pytest_options()
    base = session_options_from_pytest(_Config(declared, {}))
    changed = session_options_from_pytest(_Config(declared, {dest: _pytest_value(declared[dest])}))
    assert changed != base, f"pytest {declared[dest]['flag']}: accepted, but SessionOptions is unchanged"


def test_pytest_and_cli_agree_on_the_same_values() -> None:
    """One builder: the same values through argparse and through pytest give the same session options."""
    argv = ["--profile", "ci", "--device", "cpu", "--dtype", "float32", "--batch-size", "4"]
    cli = options_from_args(_parse("run", [*argv, "--results", "/tmp/r", "--cache-dir", "/tmp/c"]))
    declared = _pytest_options()
    override = {
        "profile": "ci",
        "device": "cpu",
        "dtype": "float32",
        "batch_size": 4,
        "results": Path("/tmp/r"),
        "cache_dir": Path("/tmp/c"),
    }
    from_pytest = session_options_from_pytest(_Config(declared, override))
    assert isinstance(cli, RunOptions)
    # progress differs by design (pytest captures stderr); everything else is the same
    assert asdict(cli.session) | {"progress": False} == asdict(from_pytest)


def test_session_options_are_built_in_one_place() -> None:
    """No module of the package, and neither conftest, constructs ``SessionOptions(`` but the builder's."""
    offenders = []
    files = [*(REPO / "benchmark").rglob("*.py"), REPO / "conftest.py", REPO / "claims" / "conftest.py"]
    for path in files:
        if path == REPO / "benchmark" / "run" / "options.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "SessionOptions":
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not offenders, f"SessionOptions built outside benchmark/run/options.py: {offenders}"
