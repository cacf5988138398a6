"""The report's section on eval sets of your own (`evaluate.sets`): each set's accuracy per run and
iteration, with its 95 % Wilson interval. Absent when no recorded run has such a set."""

from __future__ import annotations

import statistics
from collections import defaultdict

from pipelines.report.data import by_run
from transforms.health.intervals import wilson


def _sets(iteration: dict) -> dict[str, dict]:
    return (iteration["metrics"] or {}).get("sets") or {}


def sets_of(records: list[dict]) -> dict[str, str]:
    """{set: its judge}, in the order first seen."""
    found: dict[str, str] = {}
    for record in records:
        for it in record["iterations"]:
            for name, metrics in _sets(it).items():
                found.setdefault(name, metrics["judge"])
    return found


def set_accuracy(records: list[dict], name: str) -> dict[int, tuple[float, float, float]]:
    """{iteration: (accuracy, mean over seeds; the 95 % Wilson interval of every seed's prompts pooled)}, in %."""
    per_iteration: dict[int, list[dict]] = defaultdict(list)
    for record in records:
        for it in record["iterations"]:
            if name in _sets(it):
                per_iteration[it["iteration"]].append(_sets(it)[name])
    accuracy = {}
    for i, seeds in sorted(per_iteration.items()):
        low, high = wilson(sum(m["n_passed"] for m in seeds), sum(m["n_prompts"] for m in seeds))
        accuracy[i] = (100 * statistics.fmean(m["accuracy"] for m in seeds), 100 * low, 100 * high)
    return accuracy


def _cell(accuracy: tuple[float, float, float] | None) -> str:
    if accuracy is None:
        return "–"
    mean, low, high = accuracy
    return f"{mean:.1f} [{low:.1f}–{high:.1f}]"


def sets_section(records: list[dict]) -> list[str]:
    sets = sets_of(records)
    if not sets:
        return []
    iterations = sorted({it["iteration"] for r in records for it in r["iterations"]})
    lines = ["## Eval sets of your own", "",
             "Share of each set's prompts whose answer its judge passed (`evaluate.sets`; `metrics/iter-N.json`, key "
             "`sets`), in %, mean over seeds; in brackets the 95 % Wilson interval of every seed's prompts pooled.", "",
             "| run | set | judge | " + " | ".join(f"it {i}" for i in iterations) + " |",
             "|---|---|---|" + "---|" * len(iterations)]
    for run, recs in by_run(records).items():
        for name, judge in sets.items():
            accuracy = set_accuracy(recs, name)
            if accuracy:
                cells = [_cell(accuracy.get(i)) for i in iterations]
                lines.append(f"| {run} | {name} | {judge} | " + " | ".join(cells) + " |")
    return [*lines, ""]
