"""Which answers of one prompt get revised: usable ones (finished, non-empty, judged without error) that the
deciding judge policy failed, naming at least one broken instruction. What "usable" and "passed" mean is the
curation chain's (transforms/curation/usable.py, judge_policy.py), not restated here."""

from __future__ import annotations

from schemas.reasons import BELOW_THRESHOLD, STOP
from schemas.records import JudgedRow
from transforms.curation.judge_policy import judge_policy
from transforms.curation.plan import CurationPlan
from transforms.curation.usable import usable
from transforms.revision.config import ReviseConfig
from transforms.revision.feedback import failed_instructions


def to_revise(rows: list[JudgedRow], config: ReviseConfig, plan: CurationPlan) -> list[JudgedRow]:
    """The failed answers of one prompt's `rows` to revise, highest combined score first (ties by candidate_id),
    at most `max_per_prompt`; none when `only_unsolved` and one of the answers passed."""
    screen, policy = usable(plan), judge_policy(plan)
    if policy is None:  # an ablation control decides by sampling: there is no failure to revise
        return []
    usable_rows = [r for r in rows if r["finish_reason"] == STOP and screen(r) is None]
    verdicts = [(r, policy(r)) for r in usable_rows]
    if config.only_unsolved and any(found is None for _, found in verdicts):
        return []
    failed = [r for r, found in verdicts if found is not None and found[0] == BELOW_THRESHOLD
              and failed_instructions(r)]
    failed.sort(key=lambda r: (-r["score"], r["candidate_id"]))
    return failed[:config.max_per_prompt]
