"""How well a judge model (or custom judge) agrees with a label: ROC AUC with its 95 % bootstrap interval,
the ROC curve, accuracy at its threshold, histograms.

Two sources of labels, each a section of the report (reports/judges/<iteration>.json):
- `judges`: the verifier's `passed` on the iteration's candidates. Candidates either judge could not
  score, or whose prompt has no constraints to verify, are left out and counted. Per-judge keys name
  the source: `verifier_passed`, `histogram_verifier_passed`, `histogram_verifier_failed`.
- `labels`: a labels file (`judge.calibration.labels`, transforms/judges/labels.py) of answers a person
  or a trusted judge labeled; for a task without a verifier. Keys: `label_passed` (rows labeled true),
  `histogram_label_passed`, `histogram_label_failed`.
The judge's score is the prediction. The interval is a stratified bootstrap (positives and negatives
resampled apart, so every resample has both), with a fixed seed: a report is a pure function of its inputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from transforms.judges.contract import JudgeResult
from transforms.judges.registry import REFERENCE

HISTOGRAM_BINS = 10
ROC_THRESHOLDS = [round(1 - i / 100, 2) for i in range(101)]  # scores are in [0, 1]
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
VERIFIER, LABEL = "verifier", "label"  # the label sources, as the per-judge keys name them
CLASS_NAMES = {VERIFIER: ("verifier passed", "verifier failed"), LABEL: ("labeled true", "labeled false")}


@dataclass(frozen=True)
class CalibrationConfig:
    # a file of answers labeled good or bad to calibrate the judges against, e.g. for a task without a
    # verifier: rows of prompt (or messages), response, label (true/false); .jsonl, .csv, .tsv or .parquet;
    # "" = none. DVC does not watch the file: after editing it, change this path or run `dvc repro -s -f judge@iter-N`
    labels: str = ""


def roc_auc(labels: list[bool], scores: list[float]) -> float | None:
    """Probability that a random positive outscores a random negative (ties count half); None with one class."""
    positives = sum(labels)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1  # average rank of a tie group, 1-based
        start = end + 1
    positive_rank_sum = sum(r for r, label in zip(ranks, labels) if label)
    return (positive_rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def roc_curve(labels: list[bool], scores: list[float]) -> dict | None:
    """True and false positive rates of `score >= threshold` at each of ROC_THRESHOLDS; None with one class."""
    positives = sum(labels)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    curve = {"threshold": ROC_THRESHOLDS, "fpr": [], "tpr": []}
    for threshold in ROC_THRESHOLDS:
        above = [label for s, label in zip(scores, labels) if s >= threshold]
        curve["tpr"].append(round(sum(above) / positives, 4))
        curve["fpr"].append(round((len(above) - sum(above)) / negatives, 4))
    return curve


def _auc_of_classes(positive_scores: np.ndarray, sorted_negative_scores: np.ndarray) -> float:
    """Mann-Whitney: the share of (positive, negative) pairs the positive wins, ties counting half."""
    below = np.searchsorted(sorted_negative_scores, positive_scores, side="left")
    at_or_below = np.searchsorted(sorted_negative_scores, positive_scores, side="right")
    wins = below.sum() + (at_or_below - below).sum() / 2
    return float(wins / (len(positive_scores) * len(sorted_negative_scores)))


def auc_interval(labels: list[bool], scores: list[float], resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> list[float] | None:
    """95 % percentile interval of the ROC AUC over stratified bootstrap resamples; None with one class."""
    truth, values = np.asarray(labels, dtype=bool), np.asarray(scores, dtype=float)
    positives, negatives = values[truth], values[~truth]
    if not len(positives) or not len(negatives):
        return None
    rng = np.random.default_rng(seed)
    aucs = [_auc_of_classes(rng.choice(positives, len(positives)), np.sort(rng.choice(negatives, len(negatives))))
            for _ in range(resamples)]
    low, high = np.percentile(aucs, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def histogram(scores: list[float], bins: int = HISTOGRAM_BINS) -> list[int]:
    counts = [0] * bins
    for s in scores:
        counts[min(int(s * bins), bins - 1)] += 1
    return counts


def population_accuracy(labels: list[bool], correct: list[bool], population: tuple[int, int]) -> float | None:
    """Accuracy over a population of (positives, negatives) estimated from a sample stratified by label: each
    class's accuracy, weighted by its share of the population."""
    classes = [(n, [c for c, label in zip(correct, labels) if label == cls])
               for n, cls in zip(population, (True, False)) if n]
    if not classes or any(not sampled for _, sampled in classes):
        return None
    return sum(n * sum(sampled) / len(sampled) for n, sampled in classes) / sum(n for n, _ in classes)


def judge_calibration(labels: list[bool], scores: list[float], threshold: float | None, excluded: int,
                      passed: list[bool] | None = None, source: str = VERIFIER,
                      population: tuple[int, int] | None = None) -> dict:
    """`threshold` None: a judge that says `passed` itself (a custom judge); its accuracy is that of `passed`.
    `source`: VERIFIER or LABEL, the prefix of the per-class keys. `population`: (positives, negatives) the
    labels were sampled from, stratified by label; the accuracy is then the population's estimate."""
    auc = roc_auc(labels, scores)
    if threshold is None:
        assert passed is not None, "a judge without a threshold says `passed` itself"
        correct = passed
    else:
        correct = [s >= threshold for s in scores]
    correct = [c == label for c, label in zip(correct, labels)]
    if population is not None:
        accuracy = population_accuracy(labels, correct, population)
    else:
        accuracy = sum(correct) / len(labels) if labels else None
    return {
        "candidates": len(labels), f"{source}_passed": sum(labels), "excluded_unscored": excluded,
        "roc_auc": None if auc is None else round(auc, 4), "roc_auc_ci95": auc_interval(labels, scores),
        "roc_curve": roc_curve(labels, scores),
        "threshold": threshold,
        "accuracy_at_threshold": None if accuracy is None else round(accuracy, 4),
        "histogram_bins": [round(i / HISTOGRAM_BINS, 2) for i in range(HISTOGRAM_BINS + 1)],
        f"histogram_{source}_passed": histogram([s for s, label in zip(scores, labels) if label]),
        f"histogram_{source}_failed": histogram([s for s, label in zip(scores, labels) if not label]),
    }


def _usable(j: dict) -> bool:
    return not json.loads(j["detail"]).get("error")


def _label(j: dict) -> bool:
    """A verifier judgment is a label only when its prompt had constraints to verify."""
    return _usable(j) and bool(json.loads(j["detail"]).get("instruction_ids", True))


def verifier_labels(judgments: list[dict]) -> dict[str, bool]:
    """{candidate_id: the verifier's `passed`} of the candidates the verifier could label."""
    return {j["candidate_id"]: j["passed"] for j in judgments if j["judge"] == REFERENCE and _label(j)}


def calibration_report(judgments: list[dict], judges: dict[str, float | None],
                       samples: dict[str, int] | None = None) -> dict:
    """Per calibrated judge (name -> threshold, None for a judge deciding `passed` itself): its agreement with the
    verifier on the same candidates. `samples`: {judge: sample size} of the judges that scored a calibration
    sample only (calibration_sample.py); their entries say so, and their accuracy is the population's estimate."""
    samples = samples or {}
    verifier = verifier_labels(judgments)
    population = (sum(verifier.values()), len(verifier) - sum(verifier.values()))
    candidates = sum(j["judge"] == REFERENCE for j in judgments)  # the verifier judges every candidate
    report = {}
    for name, threshold in sorted(judges.items()):
        own = [j for j in judgments if j["judge"] == name]
        paired = sorted((j["candidate_id"], j["score"], j["passed"]) for j in own
                        if _usable(j) and j["candidate_id"] in verifier)
        labels = [verifier[cid] for cid, _, _ in paired]
        sampled = name in samples
        report[name] = judge_calibration(labels, [score for _, score, _ in paired], threshold,
                                         excluded=len(own) - len(paired), passed=[p for _, _, p in paired],
                                         population=population if sampled else None)
        if sampled:
            scored = {j["candidate_id"] for j in own}
            report[name]["sample"] = {
                "size": samples[name], "scored": len(own), "of_candidates": candidates,
                "verifier_passed": sum(verifier[c] for c in scored if c in verifier),
                "verifier_failed": sum(not verifier[c] for c in scored if c in verifier),
                "unlabeled": sum(c not in verifier for c in scored),
                "stratified_by": f"{REFERENCE} passed", "population": dict(zip(("verifier_passed", "verifier_failed"),
                                                                             population))}
    return report


def labels_report(labels: list[bool], results: dict[str, list[JudgeResult]], judges: dict[str, float | None]) -> dict:
    """Per calibrated judge (name -> threshold, as above): its agreement with a labels file's labels, from its
    results on the file's rows (`results[name][i]` is its verdict on the row labeled `labels[i]`)."""
    report = {}
    for name, threshold in sorted(judges.items()):
        scored = [(label, result) for label, result in zip(labels, results[name], strict=True) if not result.error]
        report[name] = judge_calibration([label for label, _ in scored], [r.score for _, r in scored], threshold,
                                         excluded=len(labels) - len(scored), passed=[r.passed for _, r in scored],
                                         source=LABEL)
    return report


def _auc_title(stats: dict) -> str:
    interval = stats.get("roc_auc_ci95")
    return f"AUC {stats['roc_auc']}" + (f" [{interval[0]}, {interval[1]}]" if interval else "")


def plot_calibration(report: dict, title: str, path: str, labeled: dict | None = None) -> None:
    """One panel per judge: score histograms of verifier-passed and verifier-failed candidates; with
    `labeled` (the labels section's judges), a second row of panels: labeled-true and labeled-false rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sections = [(VERIFIER, report, "candidates")] + ([(LABEL, labeled, "labeled answers")] if labeled else [])
    names = sorted(set(report) | set(labeled or {})) or ["(no judge models enabled)"]
    fig, axes = plt.subplots(len(sections), len(names), figsize=(5 * len(names), 3.6 * len(sections)),
                             squeeze=False)
    for row, (source, section, counted) in zip(axes, sections):
        for ax, name in zip(row, names):
            stats = section.get(name)
            if stats is None:
                ax.text(0.5, 0.5, name, ha="center", va="center")
                ax.set_axis_off()
                continue
            edges = stats["histogram_bins"]
            width = edges[1] - edges[0]
            passed_name, failed_name = CLASS_NAMES[source]
            ax.bar(edges[:-1], stats[f"histogram_{source}_failed"], width=width, align="edge", alpha=0.6,
                   label=failed_name)
            ax.bar(edges[:-1], stats[f"histogram_{source}_passed"], width=width, align="edge", alpha=0.6,
                   label=passed_name)
            if stats["threshold"] is not None:
                ax.axvline(stats["threshold"], color="black", linestyle="--", linewidth=1)
            ax.set_title(f"{name}: {_auc_title(stats)}, acc {stats['accuracy_at_threshold']}")
            ax.set_xlabel("judge score")
            ax.set_ylabel(counted)
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata={"Software": None})  # no version stamp: same data, same bytes
    plt.close(fig)


def judges_below_floor(report: dict, judges: list[str], floor: float, against: str = "the verifier") -> list[str]:
    """A line for each of the judge models whose agreement with the labels (`against`: their source) is below the
    floor."""
    problems = []
    for name in judges:
        auc = (report.get(name) or {}).get("roc_auc")
        if auc is None:
            problems.append(f"{name}: ROC AUC against {against} could not be measured (needs answers it labeled "
                            f"both good and bad, that the judge could score)")
        elif auc < floor:
            problems.append(f"{name}: ROC AUC {auc} against {against} is below the floor {floor}")
    return problems
