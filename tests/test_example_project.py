"""The shipped example (examples/json_extraction): a task that is not IFEval, run as a project folder.

Its dvc.yaml is the repository's loop as `python -m pipelines.derived.project` writes it, its params.yaml is
the repository's with a few lines changed, and its verifier gives a corpus from prompts that carry no
IFEval constraints."""

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from pipelines import config as config_module
from pipelines.derived.dvc_yaml import project_dvc_yaml
from tests.test_params import leaves, raw_keys
from tests.tiny_repo import REPO, copy_repo, merged_into
from transforms.io.parquet_io import read_rows

EXAMPLE = REPO / "examples/json_extraction"


def test_the_example_dvc_yaml_is_the_loop_as_written_for_its_folder():
    assert (EXAMPLE / "dvc.yaml").read_text() == project_dvc_yaml(EXAMPLE), (
        "examples/json_extraction/dvc.yaml is stale: run `make docs`")


def test_a_project_dvc_yaml_points_at_the_code_and_at_the_folders_own_inputs():
    pipeline = yaml.safe_load(project_dvc_yaml(EXAMPLE))["stages"]
    deps = {name: stage.get("do", stage)["deps"] for name, stage in pipeline.items()}
    code = [d for stage in deps.values() for d in stage if d.split("/")[-1] in ("config.py", "transforms", "schemas")]
    assert code and all(d.startswith("../../") for d in code)
    assert "train.jsonl" in deps["prompts"]
    assert "verifier.py" in deps["judge"] and "verifier.py" in deps["evaluate"]
    assert "verifier.py" not in deps["generate"]


def test_the_example_params_are_the_repositorys_with_its_own_choices(monkeypatch):
    monkeypatch.chdir(EXAMPLE)
    config = config_module.load("params.yaml")  # imports its verifier from the folder
    assert config.curate.gating() == ["fields_match"]
    assert config.judge.enabled_specs("custom")[0].name == "fields_match"
    maps = [key for key, value in leaves(config).items() if isinstance(value, dict)]  # their entries are the run's own
    ours, theirs = ({key for key in raw_keys(yaml.safe_load(p.read_text())) if not key.startswith(tuple(f"{m}." for m in maps))}
                    for p in (REPO / "params.yaml", EXAMPLE / "params.yaml"))
    assert ours - theirs == set() and theirs - ours == set()  # no knob dropped, none invented


# The example run end to end by `dvc repro` in its folder, on a tiny model fitted to the task: every
# prompt is about one person, and the model answers with the right object, a wrong age, or prose.
PERSON = {"name": "Ann", "age": 30, "city": "Rome"}
RIGHT = json.dumps(PERSON)
WRONG_AGE = json.dumps({**PERSON, "age": 31})
PROSE = "Ann is thirty and she lives in the city of Rome in Italy."
ANSWERS = ((RIGHT, True), (RIGHT, True), (WRONG_AGE, True), (PROSE, True))
WORDINGS = ("Ann is 30 and lives in Rome.", "Meet Ann from Rome, who is 30.", "In Rome lives Ann, aged 30.",
            "Ann, 30, has a flat in Rome.", "Ann turned 30 in Rome.", "Rome is home to Ann, who is 30.")
ASK = ' Reply with only a JSON object with the keys "name", "age" and "city".'
TINY_RUN = {"prompts": {"eval_size": 3, "eval_ood_size": 3},
            "generate": {"candidates_per_prompt": 4, "max_new_tokens": 40, "micro_batch_size": 8, "num_shards": 1},
            "judge": {"num_shards": 1}, "curate": {"num_shards": 1},
            "finetune": {"epochs": 1, "batch_size": 4, "max_length": 128},
            "evaluate": {"max_new_tokens": 40, "micro_batch_size": 8},
            "iterations": {"iter-001": {"generator": "base"}}}


def write_jsonl(path, texts, expected) -> None:
    path.write_text("".join(json.dumps({"prompt": text + ASK, "metadata": {"expected": expected}}) + "\n"
                            for text in texts))


@pytest.fixture(scope="module")
def example_run(tmp_path_factory, tiny_model_dir):
    from tests.tiny_model import build_fitted_model

    root = tmp_path_factory.mktemp("example-repo")
    copy_repo(root)
    folder = root / "examples/json_extraction"
    for generated in ("dvc.lock", "metrics", "reports"):  # the committed run's, on the real model
        path = folder / generated
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    write_jsonl(folder / "train.jsonl", WORDINGS[:4], PERSON)
    write_jsonl(folder / "eval.jsonl", WORDINGS[4:], PERSON)
    write_jsonl(folder / "eval_ood.jsonl", ["The red lamp costs 12 euros."], {"item": "lamp", "price": 12})
    model = build_fitted_model(root / "task-model", [w + ASK for w in WORDINGS], ANSWERS)
    params = yaml.safe_load((folder / "params.yaml").read_text())
    merged_into(params, {**TINY_RUN, "base_model": {"source": str(model), "sha256": ""}})
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["dvc", "repro"], cwd=folder, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return folder


def test_the_example_runs_end_to_end_with_its_verifier_deciding(example_run):
    kept = read_rows(str(example_run / "data/shards/iter-001"))
    rejected = Counter(r["reason"] for r in read_rows(str(example_run / "data/rejected/iter-001")))
    assert kept and {r["text"] for r in kept} == {RIGHT}  # no allow-listing, no IFEval constraint needed
    for row in kept:
        verdict = {j["judge"]: j for j in row["judgments"]}["fields_match"]
        assert verdict["passed"] and verdict["score"] == 1.0
    assert rejected["below_threshold"] > 0 and "unverifiable" not in rejected  # the wrong age and the prose
    assert not (example_run.parents[1] / "data").exists()  # every output stayed inside the example's folder


def test_the_example_measures_its_own_sets(example_run):
    for name in ("iter-000", "iter-001"):
        sets = json.loads((example_run / f"metrics/{name}.json").read_text())["sets"]
        assert sets["people"]["judge"] == sets["products"]["judge"] == "fields_match"
        assert sets["people"]["n_prompts"] == 2 and sets["products"]["n_prompts"] == 1
        assert sets["people"]["accuracy"] == 1.0  # greedy gives the fitted model's likeliest answer, the right one
        assert sets["products"]["accuracy"] == 0.0
    assert "people" in (example_run / "reports/summary.md").read_text()
