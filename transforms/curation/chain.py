"""The curation chain: its steps, in the order they apply. Adding a step: a module that declares
`STEP` (a RowFilter or SetStep, transforms/curation/steps.py), imported and named on one line below. The
screen, the funnel and the manifest follow this order."""

from __future__ import annotations

from transforms.curation import (
    control_sample,
    decontamination,
    exact_dedup,
    heuristic_gate,
    judge_policy,
    near_dedup,
    screen,
    selection,
    semantic_dedup,
)

CHAIN = tuple(module.STEP for module in (
    screen,
    heuristic_gate,
    decontamination,
    judge_policy,
    exact_dedup,
    near_dedup,
    semantic_dedup,
    selection,
    control_sample,
))


def funnel_steps() -> list[tuple[str, tuple[str, ...]]]:
    """(step name, its reasons); a reason two steps can give counts at the first of them."""
    seen: set[str] = set()
    steps = []
    for step in CHAIN:
        reasons = tuple(r for r in step.reasons if r not in seen)
        seen.update(reasons)
        steps.append((step.name, reasons))
    return steps


REASONS = tuple(reason for _, reasons in funnel_steps() for reason in reasons)


def funnel(rows_in: int, counts: dict[str, int]) -> list[dict]:
    """Rows into and out of each step, with that step's rejections by reason."""
    steps, remaining = [], rows_in
    for step, reasons in funnel_steps():
        rejected_here = {reason: counts.get(reason, 0) for reason in reasons}
        out = remaining - sum(rejected_here.values())
        steps.append({"step": step, "in": remaining, "rejected": rejected_here, "out": out})
        remaining = out
    return steps
