"""Progress of a long stage: done of total, rate and time left.

A tqdm bar on a terminal; otherwise (DVC, CI, Dataflow logs) a log line at most every
`LOG_EVERY_SECONDS` and one when the total is reached. Beam steps count through `ShowProgress`,
a pass-through DoFn: each worker process keeps its own meter, so on a runner with several workers
a line reports what that worker has seen of the stage's total.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable

import apache_beam as beam

log = logging.getLogger("selfsift")
LOG_EVERY_SECONDS = 30.0


def duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class Meter:
    def __init__(self, label: str, total: int, unit: str, clock: Callable[[], float] = time.monotonic,
                 tty: bool | None = None):
        self.label, self.total, self.unit, self.clock = label, total, unit, clock
        self.done, self.started = 0, clock()
        self._last_line = self.started
        self._bar = None
        if sys.stderr.isatty() if tty is None else tty:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit=f" {unit}", dynamic_ncols=True)

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            if self.done >= self.total:
                self._bar.close()
            return
        now = self.clock()
        if self.done >= self.total or now - self._last_line >= LOG_EVERY_SECONDS:
            self._last_line = now
            log.info("%s", self.line(now))

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        left = max(self.total - self.done, 0)
        eta = duration(left / rate) if rate > 0 else "unknown"
        share = 100 * self.done / self.total if self.total else 100.0
        return (f"{self.label}: {self.done} of {self.total} {self.unit} ({share:.0f} %), {rate:.2f} {self.unit}/s, "
                f"{duration(elapsed)} elapsed, {eta} left")


_METERS: dict[str, Meter] = {}


def start_meter(label: str, total: int, unit: str) -> Meter:
    """A fresh meter for a stage run; Beam steps in this process count on it."""
    _METERS[label] = Meter(label, total, unit)
    return _METERS[label]


def meter(label: str, total: int, unit: str) -> Meter:
    """The process's meter for `label`, made on first use: a stage that runs one Beam pipeline per
    shard keeps counting toward the stage's total."""
    if label not in _METERS:
        start_meter(label, total, unit)
    return _METERS[label]


class ShowProgress(beam.DoFn):
    """Passes every element through and counts it (`weight(element)` units each) on the worker's meter."""

    def __init__(self, label: str, total: int, unit: str, weight: Callable[[object], int] = lambda element: 1):
        self.label, self.total, self.unit, self.weight = label, total, unit, weight

    def setup(self):
        self._meter = meter(self.label, self.total, self.unit)

    def process(self, element):
        self._meter.advance(self.weight(element))
        yield element
