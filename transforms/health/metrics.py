"""Model health: what a model's eval answers show beyond the checkers' accuracies.

Length, degeneration, diversity, format artifacts, refusals and language, per eval set. Every
share comes with a 95 % Wilson interval. Against the base model's answers to the same prompts, each
metric gets its change with a 95 % paired-bootstrap interval (intervals.centred_interval) and
`moved`: for a share, McNemar's exact test at p < 0.05 (the bootstrap is too liberal when only a
few answers change, e.g. 3 against 0); for lengths and distinct-n, the interval excluding 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from schemas.reasons import LENGTH
from transforms.health.answer_checks import ARTIFACTS, is_refusal
from transforms.health.intervals import centred_interval, mcnemar_exact, resample_indices, wilson
from transforms.judges.heuristics import HeuristicsConfig, repeated_ngram_share
from transforms.text_normalization import words

DISTINCT_ORDERS = (1, 2)
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class Answers:
    """Per-answer facts of one model's answers to one eval set, in prompt_id order."""

    prompt_ids: list[str]
    tokens: np.ndarray
    flags: dict[str, np.ndarray]
    # per order n: every answer's distinct word n-gram ids (concatenated), which answer each belongs
    # to, and each answer's n-gram count
    ngram_ids: dict[int, np.ndarray]
    ngram_owner: dict[int, np.ndarray]
    ngram_totals: dict[int, np.ndarray]


def answer_flags(row: dict, heuristics: HeuristicsConfig) -> dict[str, bool]:
    """The per-answer flags the shares count."""
    text = row["text"]
    finished = row["finish_reason"] != LENGTH
    return {
        "hit_budget": not finished,
        "repetitive": repeated_ngram_share(text, heuristics.repetition_ngram) > heuristics.max_repeated_ngram_share,
        **{name: bool(found(text, finished, row["instruction_ids"])) for name, found in ARTIFACTS.items()},
        "empty": not text.strip(),
        "refusal": is_refusal(text),
        "wrong_language": bool(row["language"]) and row["language"] != row["expected_language"],
    }


def answer_facts(rows: list[dict], heuristics: HeuristicsConfig) -> Answers:
    rows = sorted(rows, key=lambda r: r["prompt_id"])
    flags = [answer_flags(row, heuristics) for row in rows]
    ids, owners, totals = {}, {}, {}
    for n in DISTINCT_ORDERS:
        vocabulary: dict[tuple, int] = {}
        per_answer = []
        totals[n] = np.zeros(len(rows))
        for k, row in enumerate(rows):
            tokens = words(row["text"])
            grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
            totals[n][k] = len(grams)
            per_answer.append(np.array(sorted({vocabulary.setdefault(g, len(vocabulary)) for g in grams}), dtype=np.int64))
        ids[n] = np.concatenate(per_answer) if per_answer else np.zeros(0, dtype=np.int64)
        owners[n] = np.repeat(np.arange(len(rows)), [len(a) for a in per_answer])
    return Answers(
        prompt_ids=[row["prompt_id"] for row in rows],
        tokens=np.array([row["completion_tokens"] for row in rows], dtype=float),
        flags={name: np.array([f[name] for f in flags], dtype=bool) for name in (flags[0] if flags else {})},
        ngram_ids=ids, ngram_owner=owners, ngram_totals=totals,
    )


def _distinct(n: int):
    """Distinct word n-grams over all n-grams of the answers (corpus level: low when answers repeat
    each other or themselves). A bootstrap sample counts an answer drawn twice twice."""

    def compute(a: Answers, idx: np.ndarray) -> np.ndarray:
        ids, owner, totals = a.ngram_ids[n], a.ngram_owner[n], a.ngram_totals[n]
        values = np.zeros(len(idx))
        for b, sample in enumerate(idx):
            chosen = np.zeros(len(a.prompt_ids), dtype=bool)
            chosen[sample] = True
            total = totals[sample].sum()
            distinct = np.count_nonzero(np.bincount(ids[chosen[owner]])) if total else 0
            values[b] = distinct / total if total else 0.0
        return values

    return compute


@dataclass(frozen=True)
class HealthMetric:
    name: str
    unit: str  # "tokens", "share" (of answers) or "ratio"
    description: str
    # (answers, (B, n) prompt indices) -> the metric on each of the B samples
    compute: Callable[[Answers, np.ndarray], np.ndarray]


def _share(name: str, description: str) -> HealthMetric:
    return HealthMetric(name, "share", description, lambda a, idx: a.flags[name][idx].mean(axis=1))


# In the order the report shows them.
HEALTH_METRICS = (
    HealthMetric("length_mean", "tokens", "mean answer length", lambda a, idx: a.tokens[idx].mean(axis=1)),
    HealthMetric("length_median", "tokens", "median answer length", lambda a, idx: np.median(a.tokens[idx], axis=1)),
    HealthMetric("length_p90", "tokens", "90th percentile of answer length",
                 lambda a, idx: np.percentile(a.tokens[idx], 90, axis=1)),
    _share("hit_budget", "answers that hit evaluate.max_new_tokens"),
    _share("repetitive", "answers whose repeated word n-gram share exceeds judge.heuristics.max_repeated_ngram_share"),
    *(HealthMetric(f"distinct_{n}", "ratio", f"distinct word {n}-grams over all {n}-grams", _distinct(n))
      for n in DISTINCT_ORDERS),
    _share("stray_quote", "answers with a paragraph that opens on a double quote it never closes"),
    _share("unbalanced", "finished answers with unbalanced quotes or brackets"),
    _share("template_markup", "answers with chat-template markup (special tokens, role lines)"),
    _share("empty", "empty answers"),
    _share("refusal", "answers that open with a refusal"),
    _share("wrong_language", "answers detected in another language than the prompt asks for"),
)
BY_NAME = {metric.name: metric for metric in HEALTH_METRICS}


def _value(metric: HealthMetric, answers: Answers) -> float:
    return float(metric.compute(answers, np.arange(len(answers.prompt_ids))[None])[0])


def health(rows: list[dict], heuristics: HeuristicsConfig, base_rows: list[dict] | None = None) -> dict:
    """{"n_answers", metric: {value[, low, high][, delta, delta_low, delta_high[, p_value], moved]}} for one eval set.

    `base_rows`: the base model's answers to the same set; changes are paired over the prompts both answered."""
    if not rows:
        raise ValueError("no answers to measure")
    answers = answer_facts(rows, heuristics)
    n = len(answers.prompt_ids)
    out: dict = {"n_answers": n}
    for metric in HEALTH_METRICS:
        value = _value(metric, answers)
        entry = {"value": round(value, 4)}
        if metric.unit == "share":
            low, high = wilson(round(value * n), n)
            entry.update(low=round(low, 4), high=round(high, 4))
        out[metric.name] = entry
    if base_rows:
        out.update(_changes(rows, base_rows, heuristics, out))
    return out


def _changes(rows: list[dict], base_rows: list[dict], heuristics: HeuristicsConfig, levels: dict) -> dict:
    common = {r["prompt_id"] for r in rows} & {r["prompt_id"] for r in base_rows}
    if not common:
        raise ValueError("the base model's answers share no prompt with these answers")
    now = answer_facts([r for r in rows if r["prompt_id"] in common], heuristics)
    base = answer_facts([r for r in base_rows if r["prompt_id"] in common], heuristics)
    idx = resample_indices(len(common))
    changes = {}
    for metric in HEALTH_METRICS:
        delta = _value(metric, now) - _value(metric, base)
        low, high = centred_interval(delta, metric.compute(now, idx) - metric.compute(base, idx))
        entry = {**levels[metric.name], "delta": round(delta, 4), "delta_low": round(low, 4), "delta_high": round(high, 4)}
        if metric.unit == "share":
            flag_now, flag_base = now.flags[metric.name], base.flags[metric.name]
            entry["p_value"] = round(mcnemar_exact(int((flag_now & ~flag_base).sum()), int((~flag_now & flag_base).sum())), 4)
            entry["moved"] = entry["p_value"] < SIGNIFICANCE
        else:
            entry["moved"] = bool(low > 0 or high < 0)
        changes[metric.name] = entry
    return changes
