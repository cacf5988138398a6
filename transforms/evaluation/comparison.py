"""Two models' answers to the same eval prompts, compared pair by pair: the difference in prompt-level
strict accuracy with its 95 % paired-bootstrap interval, the prompts one model passed and the other did
not, and McNemar's exact test on those. A difference is `significant` only when p < 0.05."""

from __future__ import annotations

import numpy as np

from transforms.health.intervals import centred_interval, mcnemar_exact, resample_indices

SIGNIFICANCE = 0.05


class UnpairedAnswers(ValueError):
    pass


def _passed(rows: list[dict]) -> dict[str, bool]:
    return {row["prompt_id"]: bool(row["passed"]) for row in rows}


def paired_difference(rows_a: list[dict], rows_b: list[dict], where: str = "") -> dict:
    """B minus A on one eval set. Both must answer exactly the same prompts (rows: `prompt_id`, `passed`)."""
    a, b = _passed(rows_a), _passed(rows_b)
    if a.keys() != b.keys():
        only_a, only_b = len(a.keys() - b.keys()), len(b.keys() - a.keys())
        raise UnpairedAnswers(f"{where}: the two models answered different prompts ({only_a} only in the first, "
                              f"{only_b} only in the second); compare answers to the same eval set")
    if not a:
        raise UnpairedAnswers(f"{where}: no answers to compare")
    ids = sorted(a)
    flags_a, flags_b = np.array([a[i] for i in ids]), np.array([b[i] for i in ids])
    gained, lost = int((flags_b & ~flags_a).sum()), int((flags_a & ~flags_b).sum())
    difference = float(flags_b.mean() - flags_a.mean())
    draws = resample_indices(len(ids))
    low, high = centred_interval(difference, (flags_b[draws].astype(float) - flags_a[draws]).mean(axis=1))
    p_value = mcnemar_exact(gained, lost)
    return {"n_prompts": len(ids), "accuracy_a": float(flags_a.mean()), "accuracy_b": float(flags_b.mean()),
            "difference": difference, "difference_low": low, "difference_high": high,
            "gained": gained, "lost": lost, "p_value": p_value, "significant": p_value < SIGNIFICANCE}


def compare_answers(rows_a: list[dict], rows_b: list[dict], splits, where: str = "") -> dict[str, dict]:
    """{eval set: paired_difference} for each of `splits` (EvalResult rows of both models, every set mixed)."""
    return {split: paired_difference([r for r in rows_a if r["split"] == split],
                                     [r for r in rows_b if r["split"] == split], f"{where} {split}".strip())
            for split in splits}
