"""The report's sections on what the evals can tell apart: each run's paired difference from its base model
(`vs_base` in metrics/iter-N.json, McNemar's exact test), and the accuracy per instruction type on the types
the base model rarely follows. Absent for records written before evaluate recorded them."""

from __future__ import annotations

import statistics
from collections import defaultdict

from pipelines.report.data import by_run
from transforms.evaluation.metrics import METRIC_PREFIX
from transforms.health.intervals import wilson

SPLITS = tuple(METRIC_PREFIX)
RARE_BELOW = 0.05  # a type is rare when the base model follows it on less than this share of eval's prompts


def _metrics(record: dict) -> dict[int, dict]:
    return {it["iteration"]: it["metrics"] for it in record["iterations"] if it["metrics"]}


def difference_text(entry: dict | None) -> str:
    """A paired difference in points with its interval and p, **bold** only when significant."""
    if entry is None:
        return "–"
    text = (f"{100 * entry['difference']:+.1f} [{100 * entry['difference_low']:+.1f}, {100 * entry['difference_high']:+.1f}]"
            f" p={entry['p_value']:.2g}")
    return f"**{text}**" if entry["significant"] else text


def paired_section(records: list[dict]) -> list[str]:
    rows = [(r, i, m["vs_base"]) for r in records for i, m in sorted(_metrics(r).items()) if m.get("vs_base")]
    if not rows:
        return []
    lines = ["## Paired against the base model", "",
             "Each evaluated model minus its run's base model on the same prompts, prompt-level strict, in points, with "
             "the 95 % paired-bootstrap interval and McNemar's exact p (`vs_base` in `metrics/iter-N.json`); **bold** "
             "only when p < 0.05.", "",
             "| run | seed | iteration | " + " | ".join(SPLITS) + " |", "|---|---|---|" + "---|" * len(SPLITS)]
    for record, iteration, vs_base in rows:
        lines.append(f"| {record['run']} | {record['seed']} | {iteration} | "
                     + " | ".join(difference_text(vs_base.get(split)) for split in SPLITS) + " |")
    return lines + [""]


def rare_types(records: list[dict], split: str = SPLITS[0]) -> list[str]:
    """The instruction types every recorded base model follows on less than RARE_BELOW of `split`'s prompts."""
    bases = [m[0]["per_instruction_type"][split] for m in map(_metrics, records)
             if 0 in m and "per_instruction_type" in m[0]]
    if not bases:
        return []
    types = set.intersection(*(set(b) for b in bases))
    return sorted(t for t in types if all(b[t]["accuracy"] < RARE_BELOW for b in bases))


def type_accuracy(records: list[dict], split: str, instruction_type: str) -> dict[int, list[tuple[int, int]]]:
    """{iteration: [(followed, instructions) of that type, one per seed]}. Seeds are not pooled: they answer
    the same eval prompts, and the base model's greedy answers are the same in every seed."""
    counts: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for record in records:
        for i, m in _metrics(record).items():
            if entry := m.get("per_instruction_type", {}).get(split, {}).get(instruction_type):
                counts[i].append((entry["followed"], entry["n"]))
    return dict(sorted(counts.items()))


def _share(seeds: list[tuple[int, int]]) -> str:
    """One seed: its share with the 95 % Wilson interval; several: their mean with min–max."""
    shares = [100 * followed / n for followed, n in seeds]
    if len(seeds) == 1:
        low, high = wilson(*seeds[0])
        return f"{shares[0]:.1f} [{100 * low:.1f}–{100 * high:.1f}] (n={seeds[0][1]})"
    return f"{statistics.fmean(shares):.1f} ({min(shares):.1f}–{max(shares):.1f}) (n={seeds[0][1]})"


def rare_types_section(records: list[dict]) -> list[str]:
    types = rare_types(records)
    if not types:
        return []
    iterations = sorted({it["iteration"] for r in records for it in r["iterations"]})
    lines = [f"## Instruction types the base model rarely follows (< {100 * RARE_BELOW:.0f} % on {SPLITS[0]})", "",
             f"Strict accuracy per type on {SPLITS[0]}, in %, with the count of its instructions "
             "(`per_instruction_type` in `metrics/iter-N.json`): one seed with its 95 % Wilson interval in brackets, "
             "several as their mean (min–max).", "",
             "| run | type | " + " | ".join(f"it {i}" for i in iterations) + " |", "|---|---|" + "---|" * len(iterations)]
    for run, recs in by_run(records).items():
        for instruction_type in types:
            counts = type_accuracy(recs, SPLITS[0], instruction_type)
            if not counts:  # a run recorded before evaluate counted types
                continue
            lines.append(f"| {run} | {instruction_type} | "
                         + " | ".join(_share(counts[i]) if i in counts else "–" for i in iterations) + " |")
    return lines + [""]
