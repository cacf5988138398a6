"""Which answers failed on their merits: usable (finished, screened, every heuristic passed) and rejected
by the judge policy as below its threshold. Revision retries them. Built from the chain's own steps, so
"usable" and "passed" mean here what they mean in curate."""

from __future__ import annotations

from schemas.reasons import BELOW_THRESHOLD, STOP
from transforms.curation.heuristic_gate import heuristic_gate
from transforms.curation.judge_policy import judge_policy
from transforms.curation.screen import usable

PASSED, FAILED = "passed", "failed"


def answer_verdict(plan):
    """(row) -> PASSED, FAILED, or None for an answer not usable or not verifiable; None for every row under an
    ablation control, which decides by sampling."""
    screen, heuristics, policy = usable(plan), heuristic_gate(plan), judge_policy(plan)

    def verdict(row) -> str | None:
        if policy is None or row["finish_reason"] != STOP or screen(row) or (heuristics and heuristics(row)):
            return None
        found = policy(row)
        if found is None:
            return PASSED
        return FAILED if found[0] == BELOW_THRESHOLD else None

    return verdict
