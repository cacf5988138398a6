"""The shipped example (examples/json_extraction): a task that is not IFEval, run as a project folder.

Its dvc.yaml is the repository's loop as `python -m pipelines.project` writes it, its params.yaml is
the repository's with a few lines changed, and its verifier gives a corpus from prompts that carry no
IFEval constraints."""

import yaml

from pipelines import config as config_module
from pipelines.project import project_dvc_yaml
from tests.test_params import leaves, raw_keys
from tests.tiny_repo import REPO

EXAMPLE = REPO / "examples/json_extraction"


def test_the_example_dvc_yaml_is_the_loop_as_written_for_its_folder():
    assert (EXAMPLE / "dvc.yaml").read_text() == project_dvc_yaml(EXAMPLE), (
        "examples/json_extraction/dvc.yaml is stale: run `python -m pipelines.project examples/json_extraction`")


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
