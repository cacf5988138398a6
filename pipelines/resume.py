"""Reusing the work of an interrupted run.

Sharded stages (generate, judge): each shard a stage completes is recorded in
`.selfsift/runs/<stage>@<iteration>.progress.json` with its sha256, its row count and the seconds it
took, under a fingerprint of everything that determines its content (params, models, input files,
code). A rerun reuses a recorded shard only if the fingerprint matches and the file's checksum
verifies; everything else is made again. The record is deleted when the stage finishes, so a
finished stage that DVC reruns starts from nothing.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

from apache_beam.io.filesystems import FileSystems

from pipelines.run_guard import RUNS_DIR
from transforms.io.parquet_io import clear_shards, shard_entry, shard_name
from transforms.io.staging import replace_file

log = logging.getLogger("selfsift")


class ShardProgress:
    def __init__(self, name: str, directory: str, fingerprint: str):
        self.name, self.directory, self.fingerprint = name, directory, fingerprint
        self.path = RUNS_DIR / f"{name}.progress.json"
        self.done: dict[str, dict] = {}

    def reusable(self) -> dict[str, dict]:
        """The recorded shards whose fingerprint and checksum still hold."""
        try:
            record = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if record.get("fingerprint") != self.fingerprint:
            log.info("%s: inputs changed since the interrupted run; its shards are not reused", self.name)
            return {}
        for file, entry in record.get("shards", {}).items():
            path = FileSystems.join(self.directory, file)
            if FileSystems.exists(path) and _same(shard_entry(path), entry):
                self.done[file] = entry
            else:
                log.warning("%s: %s is missing or fails its checksum; making it again", self.name, file)
        return dict(self.done)

    def record(self, file: str, seconds: float) -> None:
        self.done[file] = {**shard_entry(FileSystems.join(self.directory, file)), "seconds": round(seconds, 3)}
        record = json.dumps({"fingerprint": self.fingerprint, "shards": self.done}, indent=2, sort_keys=True)
        replace_file(self.path, lambda tmp: tmp.write_text(record), crash_point=False)

    def clear(self) -> None:
        Path(self.path).unlink(missing_ok=True)


def _same(actual: dict, recorded: dict) -> bool:
    return actual["sha256"] == recorded.get("sha256") and actual["rows"] == recorded.get("rows")


def run_shards(progress: ShardProgress, count: int, one_run_each: bool, run: Callable[[list[int]], None],
               rows: str, work: str) -> None:
    """Makes the `count` shards of `progress.directory` with `run(shard indices)`, reusing those an
    interrupted run completed: one run per shard, each recorded when done, or (`one_run_each` off)
    every missing shard in one run. `rows` and `work` name the records and the work for the log."""
    reused = progress.reusable()
    clear_shards(progress.directory, keep=set(reused))
    if reused:
        log.info("%s: resuming; %d of %d shards (%d %s) were completed and verified by sha256 and are reused, "
                 "saving about %.1f s of %s", progress.name, len(reused), count,
                 sum(e["rows"] for e in reused.values()), rows, sum(e["seconds"] for e in reused.values()), work)
    pending = [i for i in range(count) if shard_name(i, count) not in reused]
    for shards in [[i] for i in pending] if one_run_each else [pending] if pending else []:
        start = time.perf_counter()
        run(shards)
        seconds = time.perf_counter() - start
        for i in shards:
            progress.record(shard_name(i, count), seconds / len(shards))
        log.info("%s: shard(s) %s of %d done in %.1f s", progress.name, shards, count, seconds)
