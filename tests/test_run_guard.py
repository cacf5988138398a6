"""One run of a stage at a time; a killed run is reported by the next; completed shards are reused
only when their fingerprint and checksum verify."""

import os
import signal
import subprocess
import sys

import pyarrow as pa
import pytest

from pipelines.resume import ShardProgress
from pipelines.run_guard import StageBusy, guarded
from tests.stage_fixtures import chdir
from transforms.io.parquet_io import shard_name, table_bytes, write_atomically

HOLD = """
import sys, time
from pipelines.run_guard import guarded
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
