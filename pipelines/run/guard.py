"""One run of a stage at a time, and a record of runs that never finished.

`guarded(stage, iteration, config)` takes an exclusive lock (`.selfsift/runs/<stage>@<iteration>.lock`) so
a second run of the same stage fails fast instead of writing over the first; the kernel drops the
lock when a process dies, so a crash never leaves a stale lock. A `.running` marker is written on
entry and removed on a normal exit (success or a reported error); finding one on entry means the
previous run was killed, and the stage says so before it starts again. A run that finishes records
its wall time (`pipelines/run/stage_times.py`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.run import stage_times
from transforms.io import faults

if TYPE_CHECKING:
    from pipelines.config import Config

RUNS_DIR = Path(".selfsift/runs")
log = logging.getLogger("selfsift")


class StageBusy(RuntimeError):
    pass


@contextlib.contextmanager
def guarded(stage: str, iteration: str | None = None, config: Config | None = None):
    """Yields the unfinished earlier run's record ({} if the last run finished).

    `config` ties the recorded time to the files the stage consumed and produced; without one
    (a test) the time is recorded unlinked and no run record counts it."""
    name = stage_times.stage_name(stage, iteration)
    link = stage_times.links(config).get(name) if config else None
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    marker = RUNS_DIR / f"{name}.running"
    with open(RUNS_DIR / f"{name}.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = stage_times.read_record(marker).get("pid", "unknown")
            raise StageBusy(f"{name} is already running in this repo (pid {holder}); wait for it to "
                            f"finish or stop it, then run again") from None
        interrupted = stage_times.read_record(marker) if marker.exists() else {}
        if interrupted:
            log.warning("%s: the previous run (pid %s, started %s) was interrupted before it finished; running "
                        "again", name, interrupted.get("pid"), interrupted.get("started"))
        marker.write_text(json.dumps({"pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
        faults.set_stage(stage)
        faults.reached("start")
        consumed = stage_times.current_sha256(link.consumes) if link else None
        started = time.monotonic()
        try:
            yield interrupted
        except Exception:
            marker.unlink(missing_ok=True)  # a reported error, not an interruption
            raise
        stage_times.record(RUNS_DIR, name, time.monotonic() - started, consumed, link)
        marker.unlink(missing_ok=True)
