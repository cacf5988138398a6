"""IFEval's four accuracies from per-prompt instruction results, the accuracy of an eval set of your own
with its 95 % Wilson interval, and the share of prompts whose checks raised, above which no accuracy is
reported."""

from __future__ import annotations

from transforms.health.intervals import wilson
from transforms.io.layout import EVAL_SPLITS
from transforms.judges.ifeval_verifier import NAME as VERIFIER

# The eval sets, and the prefix of their keys in metrics/iter-N.json.
METRIC_PREFIX = dict(zip(EVAL_SPLITS, ("", "ood_")))
METRIC_KEYS = ("prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc")


class TooManyCheckerErrors(ValueError):
    pass


def accuracies(results: list[dict]) -> dict:
    """`results`: one dict per prompt with aligned `strict` and `loose` lists of booleans, and the
    `error` of a check that raised (its instructions count as not followed)."""
    if not results:
        raise ValueError("no evaluation results to score")
    metrics = {"n_prompts": len(results), "n_errors": sum(bool(r["error"]) for r in results)}
    for mode in ("strict", "loose"):
        flags = [r[mode] for r in results]
        instructions = [f for row in flags for f in row]
        metrics[f"prompt_level_{mode}_acc"] = sum(bool(row) and all(row) for row in flags) / len(flags)
        metrics[f"inst_level_{mode}_acc"] = sum(instructions) / len(instructions) if instructions else 0.0
    return metrics


def set_metrics(results: list[dict], judge: str) -> dict:
    """An eval set of your own (`evaluate.sets`): its judge, the share of its prompts whose answer passed
    (`accuracy`, with its 95 % Wilson interval `accuracy_low`..`accuracy_high`), the counts, and for a set the
    verifier scores IFEval's four accuracies too. `results`: one dict per prompt with `passed` and `error`."""
    if not results:
        raise ValueError("no evaluation results to score")
    n, passed = len(results), sum(bool(r["passed"]) for r in results)
    low, high = wilson(passed, n)
    metrics = {"judge": judge, "n_prompts": n, "n_passed": passed, "n_errors": sum(bool(r["error"]) for r in results),
               "accuracy": passed / n, "accuracy_low": low, "accuracy_high": high}
    return {**metrics, **accuracies(results)} if judge == VERIFIER else metrics


def refuse_if_errored(metrics_by_split: dict[str, dict], max_error_share: float, where: str) -> None:
    """Raises, naming every split where more than `max_error_share` of the prompts could not be checked:
    their accuracy would measure the checker, not the model."""
    over = [f"{split}: {m['n_errors']} of {m['n_prompts']} prompts ({m['n_errors'] / m['n_prompts']:.1%})"
            for split, m in metrics_by_split.items() if m["n_errors"] > max_error_share * m["n_prompts"]]
    if over:
        raise TooManyCheckerErrors(
            f"evaluate refuses to report an accuracy: checks raised on more than evaluate.max_error_share "
            f"({max_error_share:.1%}) of the prompts, {'; '.join(over)}. The `error` column of {where} names each one.")
