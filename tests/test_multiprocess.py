"""Every Beam stage under the multi-process DirectRunner (2 worker processes): everything a stage
sends to workers pickles, and every record is still accounted for."""

import json
import subprocess

import pytest

from tests.tiny_repo import tiny_repo
from transforms.io.parquet_io import read_table

MULTI = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("multiprocess")
    env = tiny_repo(root, tiny_model_dir, {"iter-001": {"generator": "base"}})
    for stage in (["prepare-model"], ["prompts"]):
        subprocess.run(["selfsift", *stage], cwd=root, env=env, check=True, capture_output=True)
    return root, env


def run_stage(project, *argv):
    root, env = project
    result = subprocess.run(["selfsift", *argv, *MULTI], cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    return root


def test_beam_stages_run_with_two_worker_processes(project):
    root = run_stage(project, "generate", "--iteration", "1")
    assert read_table(str(root / "data/candidates/iter-001")).num_rows == 10 * 3

    run_stage(project, "judge", "--iteration", "1")
    judgments = read_table(str(root / "data/judgments/iter-001"))
    judges = set(judgments.column("judge").to_pylist())
    assert "llm_judge" in judges and judgments.num_rows == 30 * len(judges)

    run_stage(project, "curate", "--iteration", "1")
    manifest = json.loads((root / "data/shards/iter-001/manifest.json").read_text())
    assert manifest["rows_out"] + sum(manifest["rejected"].values()) == 30

    run_stage(project, "evaluate", "--iteration", "0")
    metrics = json.loads((root / "metrics/iter-000.json").read_text())
    assert metrics["n_prompts"] == 6 and metrics["ood_n_prompts"] == 6
