"""The curate stage refuses a deciding judge model that disagrees with the verifier, before writing."""

import json

import pytest

from pipelines import config as config_module
from pipelines.stages import curate
from tests.stage_fixtures import chdir, write_params

WEIGHTED = {"combine": "weighted", "weights": {"ifeval_verifier": 1.0, "llm_judge": 1.0}}


def load(tmp_path, **curate_overrides):
    write_params(tmp_path, "unused", judge={"llm_judge": {"enabled": True, "model": "models/base"}},
                 curate={**WEIGHTED, **curate_overrides})
    return config_module.load(tmp_path / "params.yaml")


def write_report(tmp_path, auc):
    path = tmp_path / "reports/judges/iter-001.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"judges": {"llm_judge": {"roc_auc": auc}}}))


def test_low_auc_judge_is_refused_and_nothing_is_touched(tmp_path):
    config = load(tmp_path)
    write_report(tmp_path, 0.31)
    kept = tmp_path / "data/shards/iter-001"
    kept.mkdir(parents=True)
    (kept / "manifest.json").write_text("earlier run")
    with chdir(tmp_path), pytest.raises(curate.JudgeRefused) as err:
        curate.main(config, "iter-001", [])
    assert "llm_judge: ROC AUC 0.31" in str(err.value) and "allow_low_auc_judges" in str(err.value)
    assert (kept / "manifest.json").read_text() == "earlier run"


def test_override_and_good_judges_pass_the_check(tmp_path):
    write_report(tmp_path, 0.31)
    allowed, lower_floor = load(tmp_path, allow_low_auc_judges=["llm_judge"]), load(tmp_path, judge_auc_floor=0.3)
    with chdir(tmp_path):
        curate.check_judges(allowed, "iter-001")
        curate.check_judges(lower_floor, "iter-001")


def test_missing_report_is_named(tmp_path):
    config = load(tmp_path)
    with chdir(tmp_path), pytest.raises(curate.JudgeRefused, match="calibration report not found"):
        curate.check_judges(config, "iter-001")


def test_recorded_only_judges_are_not_checked(tmp_path):
    write_params(tmp_path, "unused", judge={"llm_judge": {"enabled": True, "model": "models/base"}},
                 curate={"weights": {"ifeval_verifier": 1.0, "llm_judge": 0.0}})
    config = config_module.load(tmp_path / "params.yaml")
    with chdir(tmp_path):
        curate.check_judges(config, "iter-001")  # no report needed
