"""`resumable` means the same on every runner (pipelines/run/resume.py): a rerun keeps the shards an interrupted run
completed for the same inputs and makes the rest. On a local runner each shard is its own run; on a distributed one,
one job makes every missing shard, and the shards a failed job finished are kept."""

import pyarrow as pa
import pytest

from pipelines.run.resume import ShardProgress, run_shards
from transforms.io.parquet_io import read_bytes, shard_name, table_bytes, write_atomically

SCHEMA = pa.schema([("id", pa.string())])
DATAFLOW = ["--runner=DataflowRunner"]
LOCAL = ["--runner=DirectRunner"]


class Crash(RuntimeError):
    pass


def maker(folder, runs: list, fail_after: int | None = None):
    """A stand-in for a Beam run: writes the shards it is given (each renamed into place when complete), and with
    `fail_after` dies after writing that many."""

    def run(shards: list[int], total: int) -> None:
        runs.append(list(shards))
        for done, index in enumerate(shards):
            if fail_after is not None and done == fail_after:
                raise Crash("the job failed")
            write_atomically(f"{folder}/{shard_name(index, 3)}", table_bytes([{"id": f"row-{index}"}], SCHEMA))

    return run


def make(folder, fingerprint: str, resumable: bool, flags: list[str], runs: list, fail_after: int | None = None):
    run_shards(ShardProgress("stage@iter-001", str(folder), fingerprint), 3, resumable, flags,
               maker(folder, runs, fail_after), "rows", "work", len)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the progress record goes to .selfsift/runs here
    return tmp_path / "bucket" / "candidates"


def test_a_failed_single_job_keeps_the_shards_it_finished(folder):
    runs: list = []
    with pytest.raises(Crash):
        make(folder, "inputs-1", True, DATAFLOW, runs, fail_after=2)
    finished = {i: read_bytes(f"{folder}/{shard_name(i, 3)}") for i in (0, 1)}
    make(folder, "inputs-1", True, DATAFLOW, runs)
    assert runs == [[0, 1, 2], [2]]  # one job each time; the second makes only what the first did not finish
    assert {i: read_bytes(f"{folder}/{shard_name(i, 3)}") for i in (0, 1)} == finished


def test_on_a_local_runner_each_shard_is_its_own_run(folder):
    runs: list = []
    with pytest.raises(Crash):
        make(folder, "inputs-1", True, LOCAL + ["--direct_num_workers=2"], runs, fail_after=0)
    make(folder, "inputs-1", True, LOCAL, runs)
    assert runs == [[0], [0], [1], [2]]


def test_other_inputs_or_resumable_off_make_every_shard_again(folder):
    runs: list = []
    with pytest.raises(Crash):
        make(folder, "inputs-1", True, DATAFLOW, runs, fail_after=2)
    make(folder, "inputs-2", True, DATAFLOW, runs)  # the params changed in between
    assert runs[-1] == [0, 1, 2]
    with pytest.raises(Crash):
        make(folder, "inputs-3", True, DATAFLOW, runs, fail_after=1)
    make(folder, "inputs-3", False, DATAFLOW, runs)
    assert runs[-1] == [0, 1, 2]
