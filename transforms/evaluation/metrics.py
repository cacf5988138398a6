"""IFEval's four accuracies from per-prompt instruction results, each with its 95 % interval, the strict
accuracy per instruction type, the accuracy of an eval set of your own with its 95 % Wilson interval, and
the share of prompts whose checks raised, above which no accuracy is reported.

A prompt-level accuracy is a share of independent prompts: Wilson interval. An instruction-level one
counts a prompt's instructions together, and they are not independent (one bad answer fails several),
so its interval resamples prompts (bootstrap)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from transforms.health.intervals import centred_interval, resample_indices, wilson
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
    n = len(results)
    metrics: dict[str, float] = {"n_prompts": n, "n_errors": sum(bool(r["error"]) for r in results)}
    draws = resample_indices(n)
    for mode in ("strict", "loose"):
        flags = [r[mode] for r in results]
        passed = sum(bool(row) and all(row) for row in flags)
        prompt_key, inst_key = f"prompt_level_{mode}_acc", f"inst_level_{mode}_acc"
        metrics[prompt_key] = passed / n
        metrics[f"{prompt_key}_low"], metrics[f"{prompt_key}_high"] = wilson(passed, n)
        followed = np.array([sum(row) for row in flags], dtype=float)
        counted = np.array([len(row) for row in flags], dtype=float)
        metrics[inst_key] = followed.sum() / counted.sum() if counted.sum() else 0.0
        samples = followed[draws].sum(axis=1) / np.maximum(counted[draws].sum(axis=1), 1)
        low, high = centred_interval(metrics[inst_key], samples) if counted.sum() else (0.0, 1.0)
        metrics[f"{inst_key}_low"], metrics[f"{inst_key}_high"] = max(0.0, low), min(1.0, high)
    return metrics


def per_instruction_type(results: list[dict]) -> dict[str, dict]:
    """{instruction type: instructions of that type (`n`), how many were followed strictly, the share with its
    95 % Wilson interval}. A type's instructions count as independent: a built-in prompt holds a type at most once."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in results:
        for instruction_id, followed in zip(row["instruction_ids"], row["strict"], strict=True):
            counts[instruction_id][0] += bool(followed)
            counts[instruction_id][1] += 1
    out = {}
    for instruction_id, (followed, n) in sorted(counts.items()):
        low, high = wilson(followed, n)
        out[instruction_id] = {"n": n, "followed": followed, "accuracy": followed / n, "low": low, "high": high}
    return out


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
