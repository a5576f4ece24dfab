"""Progress of long stages (extraction, claim evaluation): bars on a terminal, timed lines in a log, or nothing.

Why three modes: a bar redraws one line, which is right on a terminal and unreadable in a CI log or a ``nohup``
file, where a reader needs a line per stage and one every minute or so with done/total, rate and ETA. ``--quiet``
turns both off. The mode is chosen once per run (:func:`choose_mode`) and every stage reports through one
:class:`ProgressReporter`, which also keeps a run-wide ETA across stages when it is told the plan.

The extraction engine accepts a reporter where it used to take ``progress=True`` (``extract_latents(...,
progress=reporter)``); a plain ``True`` still means "bars on a terminal, lines elsewhere".
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol, TextIO

Mode = Literal["bar", "log", "off"]

#: Seconds between two log lines of one stage (the issue: "one every minute or so").
LOG_INTERVAL_S = 60.0


class StageProgress(Protocol):
    """What a stage reports to: items done, then close once."""

    def update(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


def choose_mode(*, quiet: bool = False, stream: TextIO | None = None) -> Mode:
    """``off`` when quiet, ``bar`` when ``stream`` (default stderr) is a terminal, else ``log``."""
    if quiet:
        return "off"
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "bar" if callable(isatty) and isatty() else "log"


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: short enough for a log line, exact enough for a plan."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class _NullStage:
    def update(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


@dataclass
class _LogStage:
    """A stage that writes a start line, a line every ``interval`` seconds, and an end line."""

    reporter: ProgressReporter
    label: str
    total: int
    unit: str
    done: int = 0
    started: float = 0.0
    last_line: float = 0.0
    last_update: float = 0.0
    closed: bool = False

    def __post_init__(self) -> None:
        self.started = self.last_line = self.last_update = self.reporter.clock()
        self.reporter.line(f"{self.label}: 0/{self.total} {self.unit}s")
        if self.reporter.heartbeat:  # a line per interval also while one slow item (a claim, a batch) runs
            threading.Thread(target=self._beat, name=f"progress {self.label}", daemon=True).start()

    def _beat(self) -> None:
        pause = min(self.reporter.interval / 4, 5.0)
        while not self.closed:
            time.sleep(pause)
            self._maybe_line()

    def _maybe_line(self) -> None:
        with self.reporter.lock:
            now = self.reporter.clock()
            if self.closed or now - self.last_line < self.reporter.interval or self.done >= self.total:
                return
            self.last_line = now
        self.reporter.line(self._status(now))

    def update(self, n: int = 1) -> None:
        self.done += n
        if n > 0:  # an empty update is not a finished item: it must not restart the ETA's countdown
            self.last_update = self.reporter.clock()
        self.reporter.advance(self.label, n)
        self._maybe_line()

    def _status(self, now: float) -> str:
        # The rate is measured up to the last finished item, and the time since then counts against the ETA:
        # with coarse items (two 20-seed shards every half hour) a rate over the whole elapsed time falls and
        # the ETA grows between two finishes (a 2h08m ETA one minute before the last 32 minutes began).
        rate = self.done / max(self.last_update - self.started, 1e-9)
        percent = 100.0 * self.done / self.total if self.total else 100.0
        text = f"{self.label}: {self.done}/{self.total} {self.unit}s ({percent:.0f}%), "
        if rate > 0:
            left = (self.total - self.done) / rate - (now - self.last_update)
            eta = (
                f"ETA {format_duration(left)}"
                if left >= 0
                else f"overdue by {format_duration(-left)} at that rate"
            )
            text += f"{_rate(rate, self.unit)}, {eta}"
        else:
            # coarse items (a calibration shard takes ~30 min): say how long the first has run, not "0/s"
            elapsed = now - self.started
            text += f"none finished after {format_duration(elapsed)}, no rate or ETA yet"
        overall = self.reporter.overall_eta()
        return text + (f"; run: {overall}" if overall else "")

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        elapsed = self.reporter.clock() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        self.reporter.line(
            f"{self.label}: {self.done}/{self.total} {self.unit}s in {format_duration(elapsed)} ({_rate(rate, self.unit)})"
        )


def _rate(rate: float, unit: str) -> str:
    if rate >= 1 or rate == 0:
        return f"{rate:.2f} {unit}s/s"
    return f"{1 / rate:.1f} s/{unit}"


class _BarStage:
    """A tqdm bar (rate and ETA are tqdm's own); the reporter's run-wide counter follows it."""

    def __init__(self, reporter: ProgressReporter, label: str, total: int, unit: str) -> None:
        from tqdm import tqdm

        self.reporter = reporter
        self.label = label
        self.bar = tqdm(total=total, desc=label, unit=unit, file=reporter.stream, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)
        self.reporter.advance(self.label, n)

    def close(self) -> None:
        self.bar.close()


@dataclass
class ProgressReporter:
    """One run's progress channel. ``mode`` ``off`` prints nothing (``--quiet``); the object is then falsy, so
    code that asks ``if progress:`` before printing extra detail stays silent too.

    :meth:`expect` gives the plan: per stage label, the items to process and the estimated seconds per item
    (from the timed first batch). Log lines then carry a run-wide ETA: the planned seconds left, rescaled by how
    fast the planned work done so far actually went, so a slow model after a fast one is not under-estimated.
    """

    mode: Mode = "log"
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    interval: float = LOG_INTERVAL_S
    clock: Callable[[], float] = time.monotonic
    heartbeat: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _plan: dict[str, tuple[int, float]] = field(default_factory=dict)
    _done: dict[str, int] = field(default_factory=dict)
    _started: float | None = None

    def __bool__(self) -> bool:
        return self.mode != "off"

    def line(self, text: str) -> None:
        """One timestamped line (log and bar modes; a bar mode's lines go between bars)."""
        if self.mode == "off":
            return
        stamp = time.strftime("%H:%M:%S")
        if self.mode == "bar":  # printed above the live bars instead of through them
            from tqdm import tqdm

            tqdm.write(f"[{stamp}] {text}", file=self.stream)
            return
        print(f"[{stamp}] {text}", file=self.stream, flush=True)

    def stage(self, label: str, total: int, unit: str = "input") -> StageProgress:
        """A stage of ``total`` items; nothing is shown for an empty stage or in ``off`` mode."""
        if self.mode == "off" or total <= 0:
            return _NullStage()
        if self.mode == "bar":
            return _BarStage(self, label, total, unit)
        return _LogStage(self, label, total, unit)

    def expect(self, plan: dict[str, tuple[int, float]]) -> None:
        """The run's plan: stage label -> (items, estimated seconds per item); starts the run-wide clock."""
        self._plan = {label: (int(n), float(s)) for label, (n, s) in plan.items() if n > 0}
        self._done = dict.fromkeys(self._plan, 0)
        self._started = self.clock()

    def advance(self, label: str, n: int) -> None:
        if label in self._done:
            self._done[label] = min(self._done[label] + n, self._plan[label][0])

    def overall_eta(self) -> str | None:
        """``done/total inputs, ETA`` over the planned stages; None without a plan or before any progress."""
        if not self._plan or self._started is None:
            return None
        planned = sum(n * s for n, s in self._plan.values())
        worked = sum(self._done[label] * s for label, (_n, s) in self._plan.items())
        done = sum(self._done.values())
        total = sum(n for n, _s in self._plan.values())
        if done == 0 or worked <= 0:
            return None
        elapsed = self.clock() - self._started
        eta = (planned - worked) * elapsed / worked
        return f"{done}/{total} inputs planned, ETA {format_duration(eta)}"


def as_reporter(progress: bool | ProgressReporter | None) -> ProgressReporter:
    """A reporter for what a caller passed: a reporter as is, ``True`` the terminal-dependent mode, else off."""
    if isinstance(progress, ProgressReporter):
        return progress
    return ProgressReporter(mode=choose_mode() if progress else "off")


def stage_progress(
    total: int, label: str, progress: bool | ProgressReporter | None, unit: str = "input"
) -> StageProgress:
    """The extraction engine's hook: one stage on the reporter ``progress`` stands for."""
    return as_reporter(progress).stage(label, total, unit)
