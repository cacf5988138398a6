"""One run of a stage at a time; a killed run is reported by the next; completed shards are reused
only when their fingerprint and checksum verify."""

import os
import signal
import subprocess
import sys

import pyarrow as pa
import pytest

from pipelines.run.guard import StageBusy, guarded
from pipelines.run.resume import ShardProgress
from tests.stage_fixtures import chdir
from transforms.io.parquet_io import shard_name, table_bytes, write_atomically

HOLD = """
import sys, time
from pipelines.run.guard import guarded
with guarded("generate", "iter-001"):
    print("holding", flush=True)
    time.sleep(60)
"""


def test_a_second_run_fails_fast_and_a_killed_one_is_reported(tmp_path, caplog):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    holder = subprocess.Popen([sys.executable, "-c", HOLD], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with chdir(tmp_path), pytest.raises(StageBusy, match=rf"generate@iter-001 is already running .*pid {holder.pid}"):
            with guarded("generate", "iter-001"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with chdir(tmp_path):
        with guarded("generate", "iter-001") as interrupted:
            assert interrupted["pid"] == holder.pid  # the kernel freed the lock; the marker tells the story
        assert "generate@iter-001: the previous run" in caplog.text and "was interrupted" in caplog.text
        with guarded("generate", "iter-001") as interrupted:
            assert interrupted == {}  # the last run finished


def test_a_reported_error_is_not_an_interruption(tmp_path):
    with chdir(tmp_path):
        with pytest.raises(ValueError), guarded("judge", "iter-001"):
            raise ValueError("bad input")
        with guarded("judge", "iter-001") as interrupted:
            assert interrupted == {}


def write_shard(directory, index, values):
    write_atomically(str(directory / shard_name(index, 2)),
                     table_bytes([{"x": v} for v in values], pa.schema([("x", pa.int64())])))


def test_shards_are_reused_only_if_fingerprint_and_checksum_hold(tmp_path):
    with chdir(tmp_path):
        out = tmp_path / "out"
        out.mkdir()
        write_shard(out, 0, [1, 2])
        write_shard(out, 1, [3])
        progress = ShardProgress("generate@iter-001", str(out), "fp-1")
        progress.record(shard_name(0, 2), 4.0)
        progress.record(shard_name(1, 2), 5.0)
        assert set(ShardProgress("generate@iter-001", str(out), "fp-1").reusable()) == {shard_name(0, 2), shard_name(1, 2)}
        assert ShardProgress("generate@iter-001", str(out), "fp-2").reusable() == {}  # params or code changed
        write_shard(out, 1, [3, 4])  # not what was recorded
        assert set(ShardProgress("generate@iter-001", str(out), "fp-1").reusable()) == {shard_name(0, 2)}
        progress.clear()
        assert ShardProgress("generate@iter-001", str(out), "fp-1").reusable() == {}


HOLD_ALL = """
import fcntl, sys, time
from pathlib import Path
locks = []
for name in sys.argv[1:]:
    Path(".selfsift/runs").mkdir(parents=True, exist_ok=True)
    f = open(f".selfsift/runs/{name}.lock", "a+")
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    locks.append(f)
print("holding", flush=True)
time.sleep(60)
"""


def stage_argv(stage) -> tuple[list[str], str]:
    """The command line of a stage on iteration 1, and the name its lock has."""
    if stage.each_iteration or stage.name == "publish":
        return [stage.name, "--iteration", "1"], f"{stage.name}@iter-001"
    return [stage.name], stage.name


def test_every_stage_takes_the_lock(tmp_path, capsys):
    from pipelines.cli import main
    from pipelines.stage_table import STAGES
    from tests.stage_fixtures import write_params

    write_params(tmp_path, "unused", iterations={"iter-001": {"generator": "base"}})
    runs = [stage_argv(stage) for stage in STAGES]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    holder = subprocess.Popen([sys.executable, "-c", HOLD_ALL, *(name for _, name in runs)], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with chdir(tmp_path):
            failures = {}
            for argv, name in runs:
                code, err = main(argv), capsys.readouterr().err
                if code != 2 or f"{name} is already running" not in err:
                    failures[name] = err.strip().splitlines()[-1:] if err.strip() else code
            assert failures == {}
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
