import json
import random

import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from transforms.judges.calibration import (
    accuracy_at,
    calibration_report,
    histogram,
    judges_below_floor,
    plot_calibration,
    roc_auc,
)


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_scikit_learn_with_ties(seed):
    rng = random.Random(seed)
    labels = [rng.random() < 0.3 for _ in range(200)]
    scores = [round(rng.random() * 0.5 + (0.3 if label else 0.0), 1) for label in labels]  # coarse: many ties
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    predictions = [s >= 0.5 for s in scores]
    assert accuracy_at(labels, scores, 0.5) == pytest.approx(accuracy_score(labels, predictions))


def test_auc_extremes_and_one_class():
    assert roc_auc([True, False], [0.9, 0.1]) == 1.0
    assert roc_auc([True, False], [0.1, 0.9]) == 0.0
    assert roc_auc([True, False], [0.5, 0.5]) == 0.5
    assert roc_auc([True, True], [0.1, 0.9]) is None


def test_histogram_puts_one_in_the_last_bin():
    assert histogram([0.0, 0.05, 0.1, 0.99, 1.0]) == [2, 1, 0, 0, 0, 0, 0, 0, 0, 2]


def _j(cid, judge, score, passed, error=None):
    return {"candidate_id": cid, "judge": judge, "score": score, "passed": passed,
            "detail": json.dumps({"error": error} if error else {})}


def test_report_pairs_judge_with_verifier_and_excludes_unscored():
    judgments = [
        _j("a", "ifeval_verifier", 1.0, True), _j("a", "llm_judge", 0.9, True),
        _j("b", "ifeval_verifier", 0.0, False), _j("b", "llm_judge", 0.2, False),
        _j("c", "ifeval_verifier", 0.0, False), _j("c", "llm_judge", 0.7, True),
        _j("d", "ifeval_verifier", 0.0, False), _j("d", "llm_judge", 0.0, False, error="input too long"),
        _j("e", "ifeval_verifier", 0.0, False, error="LookupError"), _j("e", "llm_judge", 0.4, False),
    ]
    stats = calibration_report(judgments, {"llm_judge": 0.5})["llm_judge"]
    assert stats["candidates"] == 3 and stats["excluded_unscored"] == 2 and stats["verifier_passed"] == 1
    assert stats["roc_auc"] == 1.0
    assert stats["accuracy_at_threshold"] == round(2 / 3, 4)
    assert sum(stats["histogram_verifier_passed"]) == 1 and sum(stats["histogram_verifier_failed"]) == 2


def test_floor_names_low_and_unmeasurable_judges(tmp_path):
    report = {"llm_judge": {"roc_auc": 0.31}, "reward_model": {"roc_auc": None}}
    problems = judges_below_floor(report, ["llm_judge", "reward_model"], 0.6)
    assert "llm_judge: ROC AUC 0.31" in problems[0] and "below the floor 0.6" in problems[0]
    assert "could not be measured" in problems[1]
    assert judges_below_floor({"llm_judge": {"roc_auc": 0.8}}, ["llm_judge"], 0.6) == []


def test_plot_is_written(tmp_path):
    judgments = [_j("a", "ifeval_verifier", 1.0, True), _j("a", "llm_judge", 0.9, True),
                 _j("b", "ifeval_verifier", 0.0, False), _j("b", "llm_judge", 0.2, False)]
    path = tmp_path / "plot.png"
    plot_calibration(calibration_report(judgments, {"llm_judge": 0.5}), "t", str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
