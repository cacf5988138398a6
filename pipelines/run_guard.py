"""One run of a stage at a time, and a record of runs that never finished.

`guarded(stage, iteration)` takes an exclusive lock (`.selfsift/runs/<stage>@<iteration>.lock`) so
a second run of the same stage fails fast instead of writing over the first; the kernel drops the
lock when a process dies, so a crash never leaves a stale lock. A `.running` marker is written on
entry and removed on a normal exit (success or a reported error); finding one on entry means the
previous run was killed, and the stage says so before it starts again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from pathlib import Path

from transforms.io import faults
from transforms.io.staging import replace_file

RUNS_DIR = Path(".selfsift/runs")
TIMINGS = Path(".selfsift/timings.json")  # {"<stage>@<iteration>": seconds of its last successful run}
log = logging.getLogger("selfsift")


class StageBusy(RuntimeError):
    pass


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def guarded(stage: str, iteration: str):
    """Yields the unfinished earlier run's record ({} if the last run finished)."""
    name = f"{stage}@{iteration}"
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    marker = RUNS_DIR / f"{name}.running"
    with open(RUNS_DIR / f"{name}.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(marker).get("pid", "unknown")
            raise StageBusy(f"{name} is already running in this repo (pid {holder}); wait for it to "
                            f"finish or stop it, then run again") from None
        interrupted = _read(marker) if marker.exists() else {}
        if interrupted:
            log.warning("%s: the previous run (pid %s, started %s) was interrupted before it finished; running "
                        "again", name, interrupted.get("pid"), interrupted.get("started"))
        marker.write_text(json.dumps({"pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
        faults.set_stage(stage)
        faults.reached("start")
        started = time.monotonic()
        try:
            yield interrupted
        except Exception:
            marker.unlink(missing_ok=True)  # a reported error, not an interruption
            raise
        _record_time(name, time.monotonic() - started)
        marker.unlink(missing_ok=True)


def _record_time(name: str, seconds: float) -> None:
    timings = _read(TIMINGS)
    timings[name] = round(seconds, 1)
    replace_file(TIMINGS, lambda tmp: tmp.write_text(json.dumps(timings, indent=2, sort_keys=True) + "\n"),
                 crash_point=False)


def stage_times() -> dict[str, float]:
    return _read(TIMINGS)
