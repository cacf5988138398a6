"""IFEval's four accuracies from per-prompt instruction results."""

from __future__ import annotations

from transforms.io.layout import EVAL_SPLITS

# The eval sets, and the prefix of their keys in metrics/iter-N.json.
METRIC_PREFIX = dict(zip(EVAL_SPLITS, ("", "ood_")))
METRIC_KEYS = ("prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc")


def accuracies(results: list[dict]) -> dict:
    """`results`: one dict per prompt with aligned `strict` and `loose` lists of booleans."""
    if not results:
        raise ValueError("no evaluation results to score")
    metrics = {"n_prompts": len(results)}
    for mode in ("strict", "loose"):
        flags = [r[mode] for r in results]
        instructions = [f for row in flags for f in row]
        metrics[f"prompt_level_{mode}_acc"] = sum(bool(row) and all(row) for row in flags) / len(flags)
        metrics[f"inst_level_{mode}_acc"] = sum(instructions) / len(instructions) if instructions else 0.0
    return metrics
