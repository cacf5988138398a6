"""How well a judge model (or custom judge) agrees with the verifier: ROC AUC and curve, accuracy at its threshold, histograms.

The verifier's `passed` is the label; the judge's score is the prediction. Candidates either judge
could not score, or whose prompt has no constraints to verify, are left out and counted.
"""

from __future__ import annotations

import json

from transforms.judges.registry import REFERENCE

HISTOGRAM_BINS = 10
ROC_THRESHOLDS = [round(1 - i / 100, 2) for i in range(101)]  # scores are in [0, 1]


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


def accuracy_at(labels: list[bool], scores: list[float], threshold: float) -> float | None:
    if not labels:
        return None
    return sum((s >= threshold) == label for s, label in zip(scores, labels)) / len(labels)


def histogram(scores: list[float], bins: int = HISTOGRAM_BINS) -> list[int]:
    counts = [0] * bins
    for s in scores:
        counts[min(int(s * bins), bins - 1)] += 1
    return counts


def judge_calibration(labels: list[bool], scores: list[float], threshold: float | None, excluded: int,
                      passed: list[bool] | None = None) -> dict:
    """`threshold` None: a judge that says `passed` itself (a custom judge); its accuracy is that of `passed`."""
    auc = roc_auc(labels, scores)
    if threshold is None:
        accuracy = sum(p == label for p, label in zip(passed, labels)) / len(labels) if labels else None
    else:
        accuracy = accuracy_at(labels, scores, threshold)
    return {
        "candidates": len(labels), "verifier_passed": sum(labels), "excluded_unscored": excluded,
        "roc_auc": None if auc is None else round(auc, 4), "roc_curve": roc_curve(labels, scores),
        "threshold": threshold,
        "accuracy_at_threshold": None if accuracy is None else round(accuracy, 4),
        "histogram_bins": [round(i / HISTOGRAM_BINS, 2) for i in range(HISTOGRAM_BINS + 1)],
        "histogram_verifier_passed": histogram([s for s, label in zip(scores, labels) if label]),
        "histogram_verifier_failed": histogram([s for s, label in zip(scores, labels) if not label]),
    }


def _usable(j: dict) -> bool:
    return not json.loads(j["detail"]).get("error")


def _label(j: dict) -> bool:
    """A verifier judgment is a label only when its prompt had constraints to verify."""
    return _usable(j) and bool(json.loads(j["detail"]).get("instruction_ids", True))


def calibration_report(judgments: list[dict], judges: dict[str, float | None]) -> dict:
    """Per calibrated judge (name -> threshold, None for a judge deciding `passed` itself): its agreement with the
    verifier on the same candidates."""
    verifier = {j["candidate_id"]: j["passed"] for j in judgments if j["judge"] == REFERENCE and _label(j)}
    report = {}
    for name, threshold in sorted(judges.items()):
        own = [j for j in judgments if j["judge"] == name]
        paired = sorted((j["candidate_id"], j["score"], j["passed"]) for j in own
                        if _usable(j) and j["candidate_id"] in verifier)
        labels = [verifier[cid] for cid, _, _ in paired]
        report[name] = judge_calibration(labels, [score for _, score, _ in paired], threshold,
                                         excluded=len(own) - len(paired), passed=[p for _, _, p in paired])
    return report


def plot_calibration(report: dict, title: str, path: str) -> None:
    """One panel per judge: score histograms of verifier-passed and verifier-failed candidates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(report) or ["(no judge models enabled)"]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        stats = report.get(name)
        if stats is None:
            ax.text(0.5, 0.5, name, ha="center", va="center")
            ax.set_axis_off()
            continue
        edges = stats["histogram_bins"]
        width = edges[1] - edges[0]
        ax.bar(edges[:-1], stats["histogram_verifier_failed"], width=width, align="edge", alpha=0.6,
               label="verifier failed")
        ax.bar(edges[:-1], stats["histogram_verifier_passed"], width=width, align="edge", alpha=0.6,
               label="verifier passed")
        if stats["threshold"] is not None:
            ax.axvline(stats["threshold"], color="black", linestyle="--", linewidth=1)
        ax.set_title(f"{name}: AUC {stats['roc_auc']}, acc {stats['accuracy_at_threshold']}")
        ax.set_xlabel("judge score")
        ax.set_ylabel("candidates")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata={"Software": None})  # no version stamp: same data, same bytes
    plt.close(fig)


def judges_below_floor(report: dict, judges: list[str], floor: float) -> list[str]:
    """A line for each of the judge models whose agreement with the verifier is below the floor."""
    problems = []
    for name in judges:
        auc = (report.get(name) or {}).get("roc_auc")
        if auc is None:
            problems.append(f"{name}: ROC AUC against the verifier could not be measured (needs candidates the "
                            f"verifier both passed and failed)")
        elif auc < floor:
            problems.append(f"{name}: ROC AUC {auc} against the verifier is below the floor {floor}")
    return problems
