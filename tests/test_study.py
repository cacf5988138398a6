import json
import subprocess
import sys

import pytest
import yaml
from dvc.utils.hydra import apply_overrides

from pipelines.config import ConfigError
from pipelines.study import runner as study
from tests.stage_fixtures import chdir

SPEC = {"seeds": [1234, 2], "common": {"judge.llm_judge.enabled": False},
        "variants": {"loop": {}, "relabel": {"relabel.enabled": True},
                     "no-filter": {"curate.control": "no_filter", "curate.control_rows": {"same_as": "loop"}}}}


def write(root, spec=SPEC):
    (root / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(root / "study.yaml")


def record(root, run, seed, kept):
    path = root / "reports/runs" / f"{run}-seed{seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"iterations": [{"iteration": 0, "kept": None}]
                                + [{"iteration": i + 1, "kept": k} for i, k in enumerate(kept)]}))


def test_runs_go_seed_by_seed_with_the_common_overrides(tmp_path):
    runs = study.load_study(write(tmp_path))
    assert [r.name for r in runs] == ["loop-seed1234", "relabel-seed1234", "no-filter-seed1234",
                                      "loop-seed2", "relabel-seed2", "no-filter-seed2"]
    assert study.command(runs[1]) == ["dvc", "exp", "run", "-n", "relabel-seed1234", "-S", "seed=1234", "-S",
                                      "report.run='relabel'", "-S", "judge.llm_judge.enabled=false", "-S",
                                      "relabel.enabled=true"]


def overridden(root, params: dict, run) -> dict:
    """params after the run's -S flags, applied as `dvc exp run` applies them."""
    path = root / "applied.yaml"
    path.write_text(yaml.safe_dump(params))
    flags = study.command(run)
    apply_overrides(str(path), [flags[i + 1] for i, flag in enumerate(flags) if flag == "-S"])
    return yaml.safe_load(path.read_text())


def test_a_control_keeps_as_many_rows_as_its_loop_kept_with_the_same_seed(tmp_path):
    runs = study.load_study(write(tmp_path))
    with chdir(tmp_path):
        with pytest.raises(ConfigError, match="list loop before no-filter"):
            study.command(runs[2])
        record(tmp_path, "loop", 1234, [86, 150])
        params = {"seed": 1, "report": {"run": "loop"}, "judge": {"llm_judge": {"enabled": True}},
                  "curate": {"control": "none", "control_rows": {"iter-009": 3}}}
        applied = overridden(tmp_path, params, runs[2])
        assert applied["curate"] == {"control": "no_filter", "control_rows": {"iter-001": 86, "iter-002": 150}}
        assert (applied["seed"], applied["report"]["run"], applied["judge"]["llm_judge"]["enabled"]) == \
            (1234, "no-filter", False)


def test_a_string_that_reads_as_another_type_stays_a_string(tmp_path):
    run = study.StudyRun("v", 1, {"a.b": "2", "a.c": "true", "a.d": "x, y: 'z'"})
    params = {"seed": 0, "report": {"run": ""}, "a": {"b": "", "c": "", "d": ""}}
    assert overridden(tmp_path, params, run)["a"] == {"b": "2", "c": "true", "d": "x, y: 'z'"}


def test_a_dry_run_lists_only_what_is_not_recorded(tmp_path):
    with chdir(tmp_path):
        record(tmp_path, "loop", 1234, [86, 150])
        plan = study.main(write(tmp_path), dry_run=True)
    assert plan["already_recorded"] == ["loop-seed1234"]
    assert len(plan["would_run"]) == 5 and plan["would_run"][0].startswith("dvc exp run -n relabel-seed1234 ")
    assert "{same_as: 'loop'}" in plan["would_run"][-1]  # seed 2's loop has not run yet
    with chdir(tmp_path):
        only = study.main(str(tmp_path / "study.yaml"), dry_run=True, only=["relabel"])
        assert [c.split()[4] for c in only["would_run"]] == ["relabel-seed1234", "relabel-seed2"]
        with pytest.raises(ConfigError, match="no variant named nope"):
            study.main(str(tmp_path / "study.yaml"), dry_run=True, only=["nope"])


@pytest.mark.parametrize("spec, message", [
    ({"seeds": [1], "variants": {"a": {"seed": 3}}}, "seed and report.run are set by the study"),
    ({"seeds": [], "variants": {"a": {}}}, "seeds must be a list of integers"),
    ({"seeds": [1], "variants": {"a": ["x"]}}, "variants.a must map params keys"),
    ({"seeds": [1], "variant": {"a": {}}}, "a study has `seeds`, `variants`"),
    ({"seeds": [1], "common": {"report.run": "x"}, "variants": {"a": {}}}, "common: seed and report.run are set"),
])
def test_a_bad_study_is_named(tmp_path, spec, message):
    with pytest.raises(ConfigError, match=message):
        study.load_study(write(tmp_path, spec))


def committed_repo(root, params: str, lock: str) -> None:
    """A git repository (in the current folder, `root`) whose commit holds params.yaml and dvc.lock."""
    subprocess.run(["git", "init", "-q"], check=True)
    (root / "params.yaml").write_text(params)
    (root / "dvc.lock").write_text(lock)
    subprocess.run(["git", "add", "."], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"], check=True)


def test_the_study_refuses_to_start_over_uncommitted_params(tmp_path):
    with chdir(tmp_path):
        committed_repo(tmp_path, "seed: 1\n", "")
        study.check_committed()
        (tmp_path / "params.yaml").write_text("seed: 2\n")
        with pytest.raises(ConfigError, match="commit or stash your edits first"):
            study.main(write(tmp_path))
        assert (tmp_path / "params.yaml").read_text() == "seed: 2\n"  # nothing lost


def test_the_committed_study_sets_only_keys_params_yaml_has():
    params = yaml.safe_load(open(study.REPO_STUDY.parent / "params.yaml").read())
    for run in study.load_study(str(study.REPO_STUDY)):
        for key in run.overrides:
            section = params
            for part in key.split("."):
                assert isinstance(section, dict) and part in section, f"{run.name}: {key} is not in params.yaml"
                section = section[part]


def test_between_runs_params_and_lock_return_to_the_commit_even_when_staged(tmp_path):
    with chdir(tmp_path):
        committed_repo(tmp_path, "seed: 1\n", "a\n")
        (tmp_path / "params.yaml").write_text("seed: 2\n")  # as `dvc exp run -S seed=2` leaves it
        (tmp_path / "dvc.lock").write_text("b\n")
        subprocess.run(["git", "add", "params.yaml", "dvc.lock"], check=True)
        study.restore_workspace()
        assert (tmp_path / "params.yaml").read_text() == "seed: 1\n" and (tmp_path / "dvc.lock").read_text() == "a\n"


def test_the_study_finds_dvc_beside_the_interpreter_when_path_has_none(tmp_path, monkeypatch):
    venv_bin = tmp_path / "venv/bin"  # a virtualenv used without activating it, as `.venv/bin/selfsift study`
    venv_bin.mkdir(parents=True)
    (venv_bin / "dvc").write_text("#!/bin/sh\n")
    (venv_bin / "dvc").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(venv_bin / "python"))
    assert study.dvc_executable() == str(venv_bin / "dvc")
    (venv_bin / "dvc").unlink()
    with pytest.raises(ConfigError, match="no dvc on PATH or beside"):
        study.dvc_executable()


def test_the_study_stops_when_head_moved_during_a_run(tmp_path):
    with chdir(tmp_path):
        committed_repo(tmp_path, "seed: 1\n", "")
        before = study.git_head()
        run = study.StudyRun("loop", 1, {})
        study.check_head_unmoved(before, run)
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty",
                        "-m", "an experiment committed onto the branch"], check=True)
        with pytest.raises(ConfigError, match="loop-seed1: HEAD moved while the run ran"):
            study.check_head_unmoved(before, run)
