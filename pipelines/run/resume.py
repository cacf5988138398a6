"""Reusing the work of an interrupted run.

Sharded stages (generate, judge): each shard a stage completes is recorded in
`.selfsift/runs/<stage>@<iteration>.progress.json` with its sha256, its row count and the seconds it
took, under a fingerprint of everything that determines its content (params, models, input files,
code). A rerun reuses a recorded shard only if the fingerprint matches and the file's checksum
verifies; everything else is made again. The record is deleted when the stage finishes, so a
finished stage that DVC reruns starts from nothing.

Training (finetune): checkpoints go to `.selfsift/runs/<stage>@<iteration>.checkpoints/`, outside
the DVC output, under a fingerprint of the training inputs. A checkpoint counts once it is marked
complete; a rerun resumes from the newest complete one when the fingerprint matches. The folder is
deleted when the stage finishes.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from apache_beam.io.filesystems import FileSystems

from pipelines.run.guard import RUNS_DIR
from transforms.io.parquet_io import clear_shards, list_shards, shard_entry, shard_name, shard_tag
from transforms.io.progress import start_meter
from transforms.io.staging import replace_file

log = logging.getLogger("selfsift")


class ShardProgress:
    """The shards of one stage run in `directory`; `tag` names those of one pass of a stage that writes
    several into the folder (parquet_io.shard_name): only they are reused or cleared."""

    def __init__(self, name: str, directory: str, fingerprint: str, tag: str = ""):
        self.name, self.directory, self.fingerprint, self.tag = name, directory, fingerprint, tag
        self.path = RUNS_DIR / f"{name}.progress.json"
        self.done: dict[str, dict] = {}

    def reusable(self) -> dict[str, dict]:
        """The shards of the interrupted run with the same fingerprint: those it recorded, whose checksum still
        holds, and those it wrote under their final names but did not get to record (a job that made several
        shards and failed): a shard file is renamed into place only when complete, and the folder held only
        reused shards when that run began (`begin`)."""
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
        for path in list_shards(self.directory) if FileSystems.exists(self.directory) else []:
            file = FileSystems.split(path)[1]
            if file not in record.get("shards", {}) and shard_tag(file) == self.tag:
                self.done[file] = {**shard_entry(path), "seconds": 0.0}
        return dict(self.done)

    def begin(self) -> None:
        """Records the fingerprint before anything is made, so the shards this run completes are its own."""
        self._save()

    def record(self, file: str, seconds: float) -> None:
        self.done[file] = {**shard_entry(FileSystems.join(self.directory, file)), "seconds": round(seconds, 3)}
        self._save()

    def _save(self) -> None:
        record = json.dumps({"fingerprint": self.fingerprint, "shards": self.done}, indent=2, sort_keys=True)
        replace_file(self.path, lambda tmp: tmp.write_text(record), crash_point=False)

    def clear(self) -> None:
        Path(self.path).unlink(missing_ok=True)


def _same(actual: dict, recorded: dict) -> bool:
    return actual["sha256"] == recorded.get("sha256") and actual["rows"] == recorded.get("rows")


def run_shards(progress: ShardProgress, count: int, resumable: bool, beam_args: list[str],
               run: Callable[[list[int], int], None], rows: str, work: str, rows_in: Callable[[list[int]], int]) -> None:
    """Makes the `count` shards of `progress.directory` with `run(shard indices, total)`. `resumable`: the shards an
    interrupted run completed are reused, and on a local runner each shard is a run of its own, so that they
    complete one at a time; a distributed runner makes every missing shard in one job (and retries failed work
    itself). Otherwise every shard is made again, in one run. `rows` and `work` name the records and the work for
    the log; `rows_in(shards)` counts the records those shards will hold, the `total` the runs show progress
    toward."""
    from pipelines.run.beam_options import runs_locally

    reused = progress.reusable() if resumable else {}
    clear_shards(progress.directory, keep=set(reused), tag=progress.tag)
    progress.begin()
    if reused:
        log.info("%s: resuming; %d of %d shards (%d %s) were completed and verified by sha256 and are reused, "
                 "saving about %.1f s of %s", progress.name, len(reused), count,
                 sum(e["rows"] for e in reused.values()), rows, sum(e["seconds"] for e in reused.values()), work)
    pending = [i for i in range(count) if shard_name(i, count, progress.tag) not in reused]
    total = rows_in(pending)
    start_meter(progress.name, total, rows)
    separate = resumable and runs_locally(beam_args)
    for shards in [[i] for i in pending] if separate else [pending] if pending else []:
        start = time.perf_counter()
        run(shards, total)
        seconds = time.perf_counter() - start
        for i in shards:
            progress.record(shard_name(i, count, progress.tag), seconds / len(shards))
        log.info("%s: shard(s) %s of %d done in %.1f s", progress.name, shards, count, seconds)


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    record: dict  # what the trainer stored with it when it was marked complete


class Checkpoints:
    """`<stage>@<iteration>.checkpoints/checkpoint-<step>/` folders (the names transformers' Trainer
    writes), valid for one fingerprint. A checkpoint is complete once `mark_complete` wrote its
    marker, which the last step of saving does; anything else is a save a kill interrupted."""

    MARKER = "selfsift_checkpoint.json"

    def __init__(self, name: str, fingerprint: str):
        self.name, self.fingerprint = name, fingerprint
        self.folder = RUNS_DIR / f"{name}.checkpoints"
        self._fingerprint_file = self.folder / "fingerprint"

    def prepare(self) -> None:
        """Removes checkpoints made for other inputs and incomplete ones, so only resumable ones remain
        (one process only: the others wait, then call `last_complete`)."""
        if self.folder.exists() and not self._matches():
            log.info("%s: inputs changed since the interrupted run; its checkpoints are not reused", self.name)
            shutil.rmtree(self.folder)
        for path in self._saved():
            if not (path / self.MARKER).is_file():
                log.warning("%s: %s was not completely saved (interrupted); removing it", self.name, path.name)
                shutil.rmtree(path)
        self.folder.mkdir(parents=True, exist_ok=True)
        replace_file(self._fingerprint_file, lambda tmp: tmp.write_text(self.fingerprint), crash_point=False)

    def last_complete(self) -> Checkpoint | None:
        """The newest complete checkpoint, if one was made for these inputs."""
        if not self._matches():
            return None
        complete = [p for p in self._saved() if (p / self.MARKER).is_file()]
        if not complete:
            return None
        path = complete[-1]
        return Checkpoint(path, _step(path), json.loads((path / self.MARKER).read_text()))

    def mark_complete(self, step: int, record: dict) -> None:
        """Marks `checkpoint-<step>` complete, then removes the older ones: the newest is all a resume needs."""
        path = self.folder / f"checkpoint-{step}"
        if not path.is_dir():
            raise FileNotFoundError(f"{self.name}: {path} was not saved, so it cannot be marked complete")
        payload = json.dumps({"step": step, **record}, indent=2, sort_keys=True)
        replace_file(path / self.MARKER, lambda tmp: tmp.write_text(payload), crash_point=False)
        for older in self._saved():
            if _step(older) < step:
                shutil.rmtree(older)

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _matches(self) -> bool:
        try:
            return self._fingerprint_file.read_text() == self.fingerprint
        except OSError:
            return False

    def _saved(self) -> list[Path]:
        """The checkpoint folders, oldest first."""
        found = [p for p in self.folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
        return sorted(found, key=_step)


def _step(path: Path) -> int:
    return int(path.name.split("-")[-1])
