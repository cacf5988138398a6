"""The rule, heuristic and custom judges applied to one candidate at a time, in one pass."""

from __future__ import annotations

from schemas.records import Candidate, Judgment, Prompt
from transforms.judges.contract import Check, JudgeResult


def enabled_checks(config) -> dict[str, Check]:
    """{name: check} of every enabled rule, heuristic and custom judge, in order (`config`: a JudgeConfig)."""
    return {spec.name: spec.build(config.settings(spec.name)) for spec in config.specs()
            if spec.kind != "model" and config.is_enabled(spec.name)}


def rule_judgments(candidate: Candidate, prompt: Prompt | None, checks: dict[str, Check]) -> list[Judgment]:
    """Every given judge's judgment of one candidate ({judge name: its check}) to its prompt (None: not found)."""
    cid = candidate["candidate_id"]
    if prompt is None:
        missing = JudgeResult.failed(f"prompt {candidate['prompt_id']} not found")
        return [missing.record(cid, name) for name in checks]
    return [check(candidate, prompt).record(cid, name) for name, check in checks.items()]
