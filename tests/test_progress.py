"""The progress reporter: a line per stage and one per interval off a terminal, nothing when quiet."""

from __future__ import annotations

import io
from typing import Any

from benchmark.engine.progress import ProgressReporter, choose_mode, format_duration, stage_progress


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_mode_follows_the_stream_and_quiet() -> None:
    assert choose_mode(stream=_Tty()) == "bar"
    assert choose_mode(stream=io.StringIO()) == "log"
    assert choose_mode(quiet=True, stream=_Tty()) == "off"


def test_log_mode_writes_start_interval_and_end_lines_with_rate_and_eta() -> None:
    stream, clock = io.StringIO(), _Clock()
    reporter = ProgressReporter(mode="log", stream=stream, interval=60.0, clock=clock, heartbeat=False)
    stage = reporter.stage("extract whisper", 100)
    clock.now += 30
    stage.update(10)  # under the interval: no line
    clock.now += 40
    stage.update(10)  # 70 s in: a line with 20/100, rate and ETA
    clock.now += 10
    stage.update(80)
    stage.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert lines[0].endswith("extract whisper: 0/100 inputs")
    assert "20/100 inputs (20%)" in lines[1] and "3.5 s/input" in lines[1] and "ETA 4m40s" in lines[1]
    assert "100/100 inputs in 1m20s" in lines[2]


def test_run_wide_eta_rescales_the_plan_by_the_speed_seen() -> None:
    stream, clock = io.StringIO(), _Clock()
    reporter = ProgressReporter(mode="log", stream=stream, interval=1.0, clock=clock, heartbeat=False)
    # planned: 10 fast inputs (1 s each) then 10 slow ones (10 s each) = 110 s of work
    reporter.expect({"extract fast": (10, 1.0), "extract slow": (10, 10.0)})
    fast = reporter.stage("extract fast", 10)
    clock.now += 20  # twice as slow as planned
    fast.update(10)
    fast.close()
    # 10 planned seconds took 20: the 100 planned seconds left should take 200
    assert reporter.overall_eta() == "10/20 inputs planned, ETA 3m20s"


def test_quiet_prints_nothing_and_is_falsy() -> None:
    stream = io.StringIO()
    reporter = ProgressReporter(mode="off", stream=stream)
    stage = reporter.stage("extract x", 5)
    stage.update(5)
    stage.close()
    reporter.line("hello")
    assert stream.getvalue() == ""
    assert not reporter


def test_the_engine_hook_accepts_a_reporter_or_a_flag() -> None:
    stream = io.StringIO()
    stage = stage_progress(3, "extract y", ProgressReporter(mode="log", stream=stream))
    stage.update(3)
    stage.close()
    assert "extract y: 3/3 inputs" in stream.getvalue()
    silent = stage_progress(3, "extract z", False)
    silent.update(3)  # a no-op stage


def test_durations_read_naturally() -> None:
    assert format_duration(4.24) == "4.2s"
    assert format_duration(42) == "42s"
    assert format_duration(185) == "3m05s"
    assert format_duration(3720) == "1h02m"


def test_bar_mode_draws_a_bar_and_writes_lines_above_it() -> None:
    stream = _Tty()
    reporter = ProgressReporter(mode="bar", stream=stream)
    stage = reporter.stage("extract w", 4)
    reporter.line("a plan line")
    stage.update(4)
    stage.close()
    text = stream.getvalue()
    assert "extract w" in text and "4/4" in text and "a plan line" in text


def test_a_slow_item_still_gets_a_line_per_interval() -> None:
    """One claim or batch can take minutes; the log must not go silent meanwhile."""
    import time

    stream = io.StringIO()
    reporter = ProgressReporter(mode="log", stream=stream, interval=0.2)
    stage = reporter.stage("evaluate claims", 3, unit="claim")
    stage.update(1)
    time.sleep(0.8)  # no update: the heartbeat writes the status
    stage.close()
    beats = [line for line in stream.getvalue().splitlines() if "1/3 claims (33%)" in line]
    assert beats, stream.getvalue()


def test_a_line_before_the_first_item_says_how_long_it_has_run() -> None:
    """A calibration shard runs ~20 min before its first seeds count: the heartbeat shows the wait, not 0/s."""
    clock, stream = _Clock(), io.StringIO()
    reporter = ProgressReporter(mode="log", stream=stream, interval=60.0, clock=clock, heartbeat=False)
    stage = reporter.stage("calibration seeds", 40, unit="seed")
    clock.now += 17 * 60
    stage._maybe_line()
    clock.now += 3 * 60
    stage.update(20)
    stage.close()
    lines = stream.getvalue().splitlines()
    waiting = [line for line in lines if "none finished after 17m00s" in line]
    assert waiting and "0/40 seeds (0%)" in waiting[0] and "/s" not in waiting[0], lines
    assert any("20/40 seeds (50%)" in line and "ETA 20m00s" in line for line in lines), lines


def _half_done_after_twenty_minutes() -> tuple[_Clock, io.StringIO, Any]:
    """A 40-seed log stage whose first 20 seeds finished after 20 minutes: 60 s a seed, 20 minutes left."""
    clock, stream = _Clock(), io.StringIO()
    reporter = ProgressReporter(mode="log", stream=stream, interval=60.0, clock=clock, heartbeat=False)
    stage = reporter.stage("calibration seeds", 40, unit="seed")
    clock.now += 20 * 60
    stage.update(20)
    return clock, stream, stage


def test_the_eta_counts_down_between_coarse_items() -> None:
    """Between two shards the ETA falls with the time spent waiting; it does not grow as the rate would."""
    clock, stream, stage = _half_done_after_twenty_minutes()
    clock.now += 15 * 60
    stage._maybe_line()
    clock.now += 10 * 60
    stage._maybe_line()
    stage.close()
    lines = stream.getvalue().splitlines()
    assert "20/40 seeds (50%), 60.0 s/seed, ETA 20m00s" in lines[1], lines
    assert "20/40 seeds (50%), 60.0 s/seed, ETA 5m00s" in lines[2], lines
    assert "20/40 seeds (50%), 60.0 s/seed, overdue by 5m00s at that rate" in lines[3], lines


def test_an_empty_update_does_not_restart_the_eta_countdown() -> None:
    """The extraction engine passes ``len(group)``, which can be 0: that finishes nothing, so the ETA keeps falling."""
    clock, stream, stage = _half_done_after_twenty_minutes()
    clock.now += 15 * 60
    stage.update(0)
    stage.close()
    lines = stream.getvalue().splitlines()
    assert "20/40 seeds (50%), 60.0 s/seed, ETA 5m00s" in lines[2], lines
