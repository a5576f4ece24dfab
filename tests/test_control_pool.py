"""A calibration run in shards of one population gives the entry one run over all its seeds gives, reports its
plan and progress, and keeps what finished when a shard fails."""

from __future__ import annotations

import io
import json
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

from benchmark.claims import registry
from benchmark.claims.calibrate import calibrate_claim
from benchmark.claims.data import Budget
from benchmark.claims.evaluate import select
from benchmark.engine.progress import ProgressReporter
from benchmark.run import control_pool
from benchmark.run.control_pool import plan_shards, run_tasks, shard_size_for
from tests.test_claim_specs import parallel_data

BUDGET = Budget(30, 5, "test")
#: fields that name when and in how many pieces an entry was made, not what it counted
_RUN_FIELDS = {"created", "seed_ranges"}
#: merged shards summarise the estimates from their stored values (6 decimals), one run from full precision
_ROUNDED = ("mean", "sd", "population_mean", "quantiles_5_50_95")


def _task() -> tuple:
    t3 = registry.get_claim("T3-text-language-early-late")
    return t3, select(t3, parallel_data(n_meanings=30, strength=1.0, seed=5), "nopunct"), {"meaning_id": 10}


def _entry(path: Path) -> tuple[dict, dict]:
    """The entry without its run fields, and its estimates' summaries (equal to rounding only)."""
    (entry,) = json.loads(path.read_text())["entries"].values()
    entry = {k: v for k, v in entry.items() if k not in _RUN_FIELDS}
    summaries = {}
    for control in ("boundary_null", "positive"):
        estimates = entry[control]["estimates"]
        summaries[control] = {k: estimates.pop(k) for k in _ROUNDED}
    return entry, summaries


def _log() -> tuple[ProgressReporter, io.StringIO]:
    stream = io.StringIO()
    return ProgressReporter(mode="log", stream=stream, heartbeat=False), stream


def _run_tasks(
    tasks: list[tuple], out: Path, *, jobs: int, progress: ProgressReporter, **kw: int
) -> list[str]:
    """:func:`run_tasks` on the test budget, 12 seeds from 0 in populations of 2 unless ``kw`` says otherwise."""
    sizes = {"seeds": 12, "first_seed": 0, "seeds_per_population": 2, **kw}
    return run_tasks(tasks, size_name="ci", budget=BUDGET, out=out, jobs=jobs, progress=progress, **sizes)


def test_shards_hold_one_population_each_and_cover_every_seed_once() -> None:
    assert [shard_size_for(n) for n in (20, 50, 2, 3, 10)] == [
        20,
        50,
        10,
        12,
        10,
    ]  # a replay digest: 10 seeds
    shards = plan_shards(2, seeds=50, first_seed=20, shard_size=20)
    assert [(s.task, s.first_seed, s.seeds) for s in shards] == [
        (0, 20, 20), (0, 40, 20), (0, 60, 10), (1, 20, 20), (1, 40, 20), (1, 60, 10)
    ]  # fmt: skip
    with pytest.raises(ValueError, match="seeds"):
        plan_shards(1, seeds=0, shard_size=20)


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """The entry of one run over seeds 0..11, the reference a sharded run must reproduce."""
    spec, pool, sizes = _task()
    whole = tmp_path_factory.mktemp("whole") / "whole.json"
    calibrate_claim(
        spec, pool, sizes, size_name="ci", seeds=12, budget=BUDGET, out=whole, seeds_per_population=2
    )
    return _entry(whole)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_sharded_run_counts_what_one_run_over_all_seeds_counts(
    tmp_path: Path, jobs: int, whole_run: tuple[dict, dict]
) -> None:
    spec, pool, sizes = _task()
    sharded = tmp_path / "sharded.json"
    reporter, stream = _log()
    done = _run_tasks([(spec, pool, sizes)], sharded, jobs=jobs, progress=reporter)
    assert done == [f"{spec.id} {pool.template} seeds 0..9", f"{spec.id} {pool.template} seeds 10..11"]
    (counted, summaries), (counted_whole, summaries_whole) = _entry(sharded), whole_run
    assert counted == counted_whole  # counts, verdicts per seed, intervals, coverage, replay digest
    for control, summary in summaries.items():
        for name, value in summary.items():
            assert value == pytest.approx(summaries_whole[control][name], abs=1e-6), (control, name)
    assert json.loads(sharded.read_text())["entries"].popitem()[1]["seed_ranges"] == [[0, 10], [10, 12]]
    log = stream.getvalue()
    assert f"calibrating 1 entry at the ci size: T3-text-language-early-late {pool.template} (sample" in log
    assert f"2 shards of at most 10 seeds (5 populations) over {jobs} worker" in log
    assert "calibration seeds: 0/12 seeds" in log and "calibration seeds: 12/12 seeds in" in log


def test_a_failed_shard_stops_the_run_and_keeps_the_shards_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, pool, sizes = _task()
    out, real_run = tmp_path / "cal.json", control_pool._run

    def second_fails(args: tuple) -> str:
        if args[4] == 10:  # the second shard
            raise RuntimeError("worker lost")
        return real_run(args)

    monkeypatch.setattr(control_pool, "_run", second_fails)
    reporter, stream = _log()
    with pytest.raises(RuntimeError, match="worker lost"):
        _run_tasks([(spec, pool, sizes)], out, jobs=1, progress=reporter)
    (entry,) = json.loads(out.read_text())["entries"].values()
    assert entry["seed_ranges"] == [[0, 10]] and entry["seeds"] == 10
    assert "calibration seeds: 10/12 seeds in" in stream.getvalue()  # the stage is closed with what it did


def test_quiet_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec, pool, sizes = _task()
    _run_tasks(
        [(spec, pool, sizes)], tmp_path / "cal.json", jobs=1, progress=ProgressReporter(mode="off"), seeds=2
    )
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_a_shard_that_fails_in_a_worker_raises_its_error(tmp_path: Path) -> None:
    spec, pool, sizes = _task()
    out = tmp_path / "cal.json"
    out.mkdir()  # the worker's shard cannot be written: its error reaches the caller
    with pytest.raises(OSError):
        _run_tasks(
            [(spec, pool, sizes)],
            out,
            jobs=2,
            progress=ProgressReporter(mode="off"),
            seeds=10,
            seeds_per_population=10,
        )


class _Recorder:
    def __init__(self) -> None:
        self.updates: list[int] = []

    def update(self, n: int = 1) -> None:
        self.updates.append(n)

    def close(self) -> None: ...


def _collect_in_thread(futures: dict, stage: _Recorder) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["results"] = control_pool.collect_as_finished(futures, stage)
        except Exception as error:  # the test reads it
            outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def _until(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_progress_advances_as_each_shard_finishes_not_at_the_end() -> None:
    """A regression seen on a 200-seed run: the parent waited for every shard before its first progress line."""
    first, second = Future(), Future()
    shards = {first: control_pool.Shard(0, 0, 20), second: control_pool.Shard(0, 20, 20)}
    stage = _Recorder()
    thread, outcome = _collect_in_thread(shards, stage)
    first.set_result("first")
    try:
        assert _until(lambda: stage.updates == [20]), stage.updates  # while the second shard still runs
    finally:
        second.set_result("second")
        thread.join(10)
    assert stage.updates == [20, 20]
    assert outcome["results"] == {shards[first]: "first", shards[second]: "second"}


def test_a_failed_shard_cancels_the_queued_ones_and_raises() -> None:
    failed, queued = Future(), Future()
    shards = {failed: control_pool.Shard(0, 0, 20), queued: control_pool.Shard(0, 20, 20)}
    stage = _Recorder()
    thread, outcome = _collect_in_thread(shards, stage)
    failed.set_exception(ValueError("shard 0..19 failed"))
    thread.join(10)
    assert queued.cancelled() and stage.updates == []
    assert isinstance(outcome.get("error"), ValueError), outcome
