"""Pairing a study's runs: each run's eval answers read back from its DVC experiment's commit."""

import json
import subprocess

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from dvc.repo import Repo

from pipelines.config import ConfigError
from pipelines.study import paired as study_paired
from tests.stage_fixtures import chdir
from transforms.evaluation.metrics import METRIC_PREFIX

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
STUDY = {"seeds": [1], "variants": {"loop": {}, "revise": {"revise.enabled": True}}}


def evals_folder(iteration: str) -> str:
    return f"data/evals/{iteration}"


def commit_answers(root, passed: dict[str, list[bool]]) -> str:
    """Answers of one run to iter-001's eval sets, tracked by DVC and committed; returns the commit."""
    rows = [{"prompt_id": f"{split}-{i}", "split": split, "passed": p}
            for split, flags in passed.items() for i, p in enumerate(flags)]
    folder = root / "data/evals/iter-001"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "part-00000-of-00001.parquet")
    Repo(str(root)).add(str(folder))
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run([*GIT, "commit", "-qm", "answers"], check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()


def record(root, run: str, accuracy: dict[str, float]) -> None:
    metrics = {f"{METRIC_PREFIX[split]}prompt_level_strict_acc": a for split, a in accuracy.items()}
    path = root / "reports/runs" / f"{run}-seed1.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"iterations": [{"iteration": 0, "metrics": None}, {"iteration": 1, "metrics": metrics}]}))


@pytest.fixture
def repo(tmp_path):
    with chdir(tmp_path):
        subprocess.run(["git", "init", "-q"], check=True)
        Repo.init(str(tmp_path))
        (tmp_path / "study.yaml").write_text(yaml.safe_dump(STUDY))
        loop = commit_answers(tmp_path, {"eval": [True, True, False, False], "eval_ood": [True, False]})
        revise = commit_answers(tmp_path, {"eval": [True, True, True, False], "eval_ood": [False, False]})
        yield tmp_path, {"loop-seed1": loop, "revise-seed1": revise}


def test_each_run_is_paired_with_the_reference_on_the_answers_of_its_experiment(repo):
    root, revs = repo
    record(root, "loop", {"eval": 0.5, "eval_ood": 0.5})
    record(root, "revise", {"eval": 0.75, "eval_ood": 0.0})
    result = study_paired.paired_against("study.yaml", ["loop"], evals_folder, revs)
    eval_, ood = result["loop"]["revise-seed1"][1]["eval"], result["loop"]["revise-seed1"][1]["eval_ood"]
    assert (eval_["difference"], eval_["gained"], eval_["lost"]) == (0.25, 1, 0)
    assert (ood["difference"], ood["gained"], ood["lost"]) == (-0.5, 0, 1)
    assert "| revise-seed1 | 1 | +25.0 [" in study_paired.paired_table(result)


def test_answers_that_do_not_score_as_the_record_says_are_refused(repo):
    root, revs = repo
    record(root, "loop", {"eval": 0.5, "eval_ood": 0.5})
    record(root, "revise", {"eval": 0.5, "eval_ood": 0.0})  # as if the experiment were another run's
    with pytest.raises(ConfigError, match="revise-seed1: its experiment's eval answers score 0.7500, its record 0.5000"):
        study_paired.paired_against("study.yaml", ["loop"], evals_folder, revs)


def test_a_recorded_run_without_an_experiment_is_named(repo):
    root, revs = repo
    record(root, "loop", {"eval": 0.5, "eval_ood": 0.5})
    record(root, "revise", {"eval": 0.75, "eval_ood": 0.0})
    with pytest.raises(ConfigError, match="no DVC experiment for the recorded run.s. revise-seed1"):
        study_paired.paired_against("study.yaml", ["loop"], evals_folder, {"loop-seed1": revs["loop-seed1"]})


def test_experiments_are_found_by_name_under_refs_exps(repo):
    root, revs = repo
    subprocess.run(["git", "update-ref", "refs/exps/ab/cdef/revise-seed1", revs["revise-seed1"]], check=True)
    assert study_paired.experiment_revs() == {"revise-seed1": revs["revise-seed1"]}
