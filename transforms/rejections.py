"""Rejection reasons, grouped by the curation step that applies them, in chain order.

Every candidate that enters curation leaves it once: kept, or rejected with one of these reasons
(and a `reason_detail` saying which judge, eval text or kept row was involved).
"""

from __future__ import annotations

import apache_beam as beam

from transforms.heuristics import HEURISTICS
from transforms.hf_generation import PROMPT_TOO_LONG

REJECTED = "rejected"  # the tag of every rejection output

UNJUDGED = "unjudged"
JUDGE_ERROR = "judge_error"
EMPTY = "empty"
CONTAMINATED = "contaminated"
UNVERIFIABLE = "unverifiable"
BELOW_THRESHOLD = "below_threshold"
DUPLICATE = "duplicate"
NEAR_DUPLICATE = "near_duplicate"
SEMANTIC_DUPLICATE = "semantic_duplicate"
OVER_PROMPT_CAP = "over_prompt_cap"
OVER_TYPE_CAP = "over_type_cap"
BELOW_TOP_FRACTION = "below_top_fraction"
NOT_SAMPLED = "not_sampled"  # controls only (curate.control): outside the random sample

STEPS = (
    ("screen", (UNJUDGED, PROMPT_TOO_LONG, EMPTY, JUDGE_ERROR)),
    ("heuristics", tuple(h.reason for h in HEURISTICS if h.reason != EMPTY)),
    ("decontamination", (CONTAMINATED,)),
    ("judge policy", (UNVERIFIABLE, BELOW_THRESHOLD)),
    ("exact dedup", (DUPLICATE,)),
    ("near dedup", (NEAR_DUPLICATE,)),
    ("semantic dedup", (SEMANTIC_DUPLICATE,)),
    ("selection", (OVER_PROMPT_CAP, OVER_TYPE_CAP, BELOW_TOP_FRACTION)),
    ("control sample", (NOT_SAMPLED,)),
)
REASONS = tuple(reason for _, reasons in STEPS for reason in reasons)

_PROMPT_FIELDS = ("messages", "instruction_ids", "kwargs")


def rejection(row: dict, reason: str, detail: str = "") -> dict:
    """A rejected-row record: the candidate, its judgments and combined score, the reason."""
    return {**{k: v for k, v in row.items() if k not in _PROMPT_FIELDS}, "reason": reason, "reason_detail": detail}


def rejected(row: dict, reason: str, detail: str = ""):
    return beam.pvalue.TaggedOutput(REJECTED, rejection(row, reason, detail))


def funnel(rows_in: int, counts: dict[str, int]) -> list[dict]:
    """Rows into and out of each step, with that step's rejections by reason."""
    steps, remaining = [], rows_in
    for step, reasons in STEPS:
        rejected_here = {reason: counts.get(reason, 0) for reason in reasons}
        out = remaining - sum(rejected_here.values())
        steps.append({"step": step, "in": remaining, "rejected": rejected_here, "out": out})
        remaining = out
    return steps
