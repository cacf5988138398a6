"""Heuristics: a row whose heuristic judge failed is rejected with that heuristic's reason, the
first failing one in registry order. Off under the `no_filter` control."""

from __future__ import annotations

from transforms.curation.steps import RowFilter
from transforms.judges.registry import HEURISTICS


def heuristic_gate(plan):
    if plan.config.control == "no_filter":
        return None

    def check(row):
        by_judge = {j["judge"]: j for j in row["judgments"]}
        for spec in HEURISTICS:
            j = by_judge.get(spec.name)
            if j is not None and not j["passed"]:
                return spec.reason, j["detail"]
        return None

    return check


STEP = RowFilter("heuristics", tuple(dict.fromkeys(spec.reason for spec in HEURISTICS)), heuristic_gate)
