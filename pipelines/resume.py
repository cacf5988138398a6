"""Reusing the completed shards of an interrupted run.

Each shard a stage completes is recorded in `.selfsift/runs/<stage>@<iteration>.progress.json`
with its sha256, its row count and the seconds it took, under a fingerprint of everything that
determines its content (params, model, input file, code). A rerun reuses a recorded shard only if
the fingerprint matches and the file's checksum verifies; everything else is made again. The record
is deleted when the stage finishes, so a finished stage that DVC reruns starts from nothing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from apache_beam.io.filesystems import FileSystems

from pipelines.run_guard import RUNS_DIR
from transforms.io.parquet_io import shard_entry
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
