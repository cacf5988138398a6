import json
import random

import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from transforms.judges.calibration import (
    auc_interval,
    calibration_report,
    histogram,
    judge_calibration,
    judges_below_floor,
    labels_report,
    plot_calibration,
    population_accuracy,
    roc_auc,
    roc_curve,
)
from transforms.judges.contract import JudgeResult


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_scikit_learn_with_ties(seed):
    rng = random.Random(seed)
    labels = [rng.random() < 0.3 for _ in range(200)]
    scores = [round(rng.random() * 0.5 + (0.3 if label else 0.0), 1) for label in labels]  # coarse: many ties
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    predictions = [s >= 0.5 for s in scores]
    accuracy = judge_calibration(labels, scores, 0.5, excluded=0)["accuracy_at_threshold"]
    assert accuracy == pytest.approx(accuracy_score(labels, predictions), abs=1e-4)


def test_accuracy_of_a_stratified_sample_estimates_the_population():
    # population: 100 positives (80 % judged right), 900 negatives (50 %): accuracy 0.53; a balanced
    # sample of 10 and 10 with the same per-class accuracy reads 0.65 unweighted
    labels = [True] * 10 + [False] * 10
    correct = [True] * 8 + [False] * 2 + [True] * 5 + [False] * 5
    assert population_accuracy(labels, correct, (100, 900)) == pytest.approx(0.53)
    assert population_accuracy(labels, correct, (0, 900)) == pytest.approx(0.5)  # a class the population lacks
    assert population_accuracy(labels[:10], correct[:10], (100, 900)) is None  # no sampled negative to weigh


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


# Six candidates the verifier passed (a, b, c) or failed (d, e, f), with known judge scores.
KNOWN = {"a": (True, 0.95), "b": (True, 0.85), "c": (True, 0.35), "d": (False, 0.45), "e": (False, 0.15),
         "f": (False, 0.05)}


def known_judgments(judges=("llm_judge",)) -> list[dict]:
    rows = []
    for cid, (passed, score) in KNOWN.items():
        rows.append(_j(cid, "ifeval_verifier", float(passed), passed))
        rows += [_j(cid, judge, score, score >= 0.5) for judge in judges]
    return rows


def test_report_on_known_scores_matches_hand_computed_figures():
    stats = calibration_report(known_judgments(), {"llm_judge": 0.5})["llm_judge"]
    # 9 passed/failed pairs; the passed one scores higher in all but c (0.35) vs d (0.45): AUC 8/9
    assert stats["roc_auc"] == round(8 / 9, 4)
    assert stats["accuracy_at_threshold"] == round(5 / 6, 4)  # only c is on the wrong side of 0.5
    assert stats["histogram_verifier_passed"] == [0, 0, 0, 1, 0, 0, 0, 0, 1, 1]
    assert stats["histogram_verifier_failed"] == [1, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    curve = stats["roc_curve"]
    at = curve["threshold"].index(0.5)
    assert (curve["tpr"][at], curve["fpr"][at]) == (round(2 / 3, 4), 0.0)


def drawn_figures(monkeypatch) -> list:
    """Records every matplotlib figure saved from now on, to read what was drawn."""
    import matplotlib.figure

    figures, save = [], matplotlib.figure.Figure.savefig

    def record(figure, *args, **kwargs):
        figures.append(figure)
        return save(figure, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    return figures


def test_plot_shows_each_judges_auc_and_class_histograms(tmp_path, monkeypatch):
    import matplotlib.image

    figures = drawn_figures(monkeypatch)
    report = calibration_report(known_judgments(), {"llm_judge": 0.5})
    path = tmp_path / "plot.png"
    plot_calibration(report, "iter-001: judge scores vs the verifier", str(path))
    (figure,) = figures
    (ax,) = figure.axes
    assert "AUC 0.8889" in ax.get_title() and "acc 0.8333" in ax.get_title()
    bars = {container.get_label(): container for container in ax.containers}
    assert set(bars) == {"verifier passed", "verifier failed"}
    stats = report["llm_judge"]
    for label, counts in (("verifier passed", stats["histogram_verifier_passed"]),
                          ("verifier failed", stats["histogram_verifier_failed"])):
        heights = [bar.get_height() for bar in bars[label]]
        lefts = [round(bar.get_x(), 2) for bar in bars[label]]
        assert lefts == stats["histogram_bins"][:-1]
        # the class's histogram, as counts or as shares of the class
        assert [h / sum(heights) for h in heights] == pytest.approx([c / sum(counts) for c in counts])
    assert any(list(line.get_xdata()) == [0.5, 0.5] for line in ax.lines)  # the judge's threshold

    image = matplotlib.image.imread(path)
    width, height = figure.get_size_inches()
    assert image.shape[1] / image.shape[0] == pytest.approx(width / height, rel=0.01)  # this figure, whole
    assert len({tuple(pixel) for pixel in image.reshape(-1, image.shape[-1])[::7]}) > 20  # drawn, not blank

    two = tmp_path / "two.png"
    plot_calibration(calibration_report(known_judgments(("llm_judge", "reward_model")),
                                        {"llm_judge": 0.5, "reward_model": 0.5}), "t", str(two))
    assert [ax.get_title().split(":")[0] for ax in figures[1].axes] == ["llm_judge", "reward_model"]
    assert matplotlib.image.imread(two).shape[1] == 2 * image.shape[1]  # one panel per judge, side by side


def test_roc_curve_gives_the_rates_at_each_threshold_and_matches_the_auc():
    labels = [True, True, True, False, False, False, False]
    scores = [0.9, 0.6, 0.3, 0.7, 0.3, 0.2, 0.0]
    curve = roc_curve(labels, scores)
    at = {t: (fpr, tpr) for t, fpr, tpr in zip(curve["threshold"], curve["fpr"], curve["tpr"], strict=True)}
    assert at[1.0] == (0.0, 0.0) and at[0.0] == (1.0, 1.0)
    assert at[0.65] == (0.25, pytest.approx(1 / 3, abs=1e-4))  # 0.9 passes; 0.7 is the one false positive
    assert at[0.3] == (0.5, 1.0)  # every positive; the 0.7 and the tied 0.3 negatives
    # the trapezoid under the curve is the AUC (no score falls between two thresholds here)
    xs, ys = curve["fpr"], curve["tpr"]
    area = sum((x1 - x0) * (y0 + y1) / 2 for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:]))
    assert area == pytest.approx(roc_auc(labels, scores), abs=1e-3)
    assert roc_curve([True, True], [0.1, 0.9]) is None


def test_the_verifier_calibration_carries_the_aucs_bootstrap_interval():
    stats = calibration_report(known_judgments(), {"llm_judge": 0.5})["llm_judge"]
    labels = [passed for passed, _ in KNOWN.values()]
    scores = [score for _, score in KNOWN.values()]
    assert stats["roc_auc_ci95"] == auc_interval(labels, scores)
    low, high = stats["roc_auc_ci95"]
    assert low <= stats["roc_auc"] <= high and high - low > 0  # one misordered pair of nine: not a point


def test_the_labels_report_pairs_each_judges_verdicts_with_the_labels_and_counts_the_unscored():
    labels = [True, True, False, False, True]
    results = {"llm_judge": [JudgeResult(0.9, True), JudgeResult(0.4, False), JudgeResult(0.2, False),
                             JudgeResult(0.6, True), JudgeResult.failed("input too long")],
               "mine": [JudgeResult(1.0, True), JudgeResult(1.0, True), JudgeResult(0.0, False),
                        JudgeResult(0.0, True), JudgeResult(1.0, True)]}
    report = labels_report(labels, results, {"llm_judge": 0.5, "mine": None})
    llm = report["llm_judge"]
    assert (llm["candidates"], llm["label_passed"], llm["excluded_unscored"]) == (4, 2, 1)
    assert llm["roc_auc"] == 0.75 and llm["accuracy_at_threshold"] == 0.5  # 0.4 and 0.6 on the wrong side
    assert sum(llm["histogram_label_passed"]) == 2 and sum(llm["histogram_label_failed"]) == 2
    assert "verifier_passed" not in llm
    mine = report["mine"]
    assert mine["roc_auc"] == 1.0 and mine["accuracy_at_threshold"] == 0.8  # its own `passed`: wrong on row 4
    assert mine["roc_auc_ci95"] == [1.0, 1.0]


def test_the_floor_names_the_labels_it_was_measured_against():
    (problem,) = judges_below_floor({"llm_judge": {"roc_auc": 0.5}}, ["llm_judge"], 0.6, "the labels in l.csv")
    assert problem == "llm_judge: ROC AUC 0.5 against the labels in l.csv is below the floor 0.6"


def test_the_plot_adds_a_row_for_the_labels_file(tmp_path, monkeypatch):
    figures = drawn_figures(monkeypatch)
    verifier = calibration_report(known_judgments(), {"llm_judge": 0.5})
    labeled = labels_report([True, False, True, False], {"llm_judge": [JudgeResult(s, s >= 0.5) for s in
                                                                      (0.8, 0.3, 0.7, 0.1)]}, {"llm_judge": 0.5})
    plot_calibration(verifier, "t", str(tmp_path / "both.png"), labeled=labeled)
    top, bottom = figures[0].axes
    assert top.get_title().startswith("llm_judge: AUC 0.8889 [") and bottom.get_title().startswith(
        "llm_judge: AUC 1.0 [1.0, 1.0], acc 1.0")
    assert {c.get_label() for c in top.containers} == {"verifier passed", "verifier failed"}
    assert {c.get_label() for c in bottom.containers} == {"labeled true", "labeled false"}
    assert [b.get_height() for b in next(c for c in bottom.containers if c.get_label() == "labeled true")] == \
        labeled["llm_judge"]["histogram_label_passed"]
