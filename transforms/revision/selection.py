"""Which answers of one prompt get revised: the answers that failed on their merits (usable, rejected by the
judge policy as below its threshold; transforms/curation/failed_answers.py) naming at least one broken
instruction."""

from __future__ import annotations

from schemas.records import JudgedRow
from transforms.curation.failed_answers import FAILED, PASSED, answer_verdict
from transforms.curation.plan import CurationPlan
from transforms.revision.config import ReviseConfig
from transforms.revision.feedback import failed_instructions


def to_revise(rows: list[JudgedRow], config: ReviseConfig, plan: CurationPlan) -> list[JudgedRow]:
    """The failed answers of one prompt's `rows` to revise, highest combined score first (ties by candidate_id),
    at most `max_per_prompt`; none when `only_unsolved` and one of the answers passed."""
    verdict = answer_verdict(plan)
    verdicts = [(r, verdict(r)) for r in rows]
    if config.only_unsolved and any(v == PASSED for _, v in verdicts):
        return []
    failed = [r for r, v in verdicts if v == FAILED and failed_instructions(r)]
    failed.sort(key=lambda r: (-r["score"], r["candidate_id"]))
    return failed[:config.max_per_prompt]
