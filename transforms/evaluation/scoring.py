"""How `evaluate` scores one answer with its eval set's judge, in one shape for every judge: the IFEval
verifier's strict and loose flags per instruction (as IFEval counts them: passed when every instruction is
followed strictly), or a custom judge's verdict. A judge that raises leaves its error, and the answer counts
as not passed."""

from __future__ import annotations

import json
from typing import Callable

from transforms.judges.contract import prompt_text
from transforms.judges.ifeval_verifier import NAME as VERIFIER
from transforms.judges.ifeval_verifier import verify

# The kinds of judge that can score an eval set: a rule (the verifier) or one of yours. Heuristics and
# model judges are filters and calibrated estimates, not a measure of the model.
SCORING_KINDS = ("rule", "custom")

Scorer = Callable[[dict, str], dict]  # (prompt record, answer) -> the EvalResult's verdict columns


def verifier_verdict(prompt: dict, text: str) -> dict:
    verdict = verify(text, prompt["instruction_ids"], prompt["kwargs"], prompt_text(prompt))
    return {"judge": VERIFIER, "score": verdict.score, "passed": verdict.passed, "detail": "{}",
            "strict": list(verdict.strict), "loose": list(verdict.loose), "error": verdict.error or None}


def judge_scorer(name: str, check) -> Scorer:
    """A scorer from a judge's check (candidate, prompt) -> JudgeResult."""

    def scorer(prompt: dict, text: str) -> dict:
        result = check({"text": text}, prompt)
        return {"judge": name, "score": float(result.score), "passed": bool(result.passed) and not result.error,
                "detail": json.dumps(result.detail, sort_keys=True), "strict": [], "loose": [],
                "error": result.error or None}

    return scorer


def scorers_for(judges, judge_of: dict[str, str]) -> dict[str, Scorer]:
    """{eval set: its scorer}, from `judge_of` ({eval set: judge name}) and the run's JudgeConfig."""
    built = {}
    for name in sorted(set(judge_of.values())):
        spec = judges.spec(name)
        if spec.kind not in SCORING_KINDS:
            raise ValueError(f"judge {name!r} is a {spec.kind} judge, which cannot score an eval set")
        built[name] = verifier_verdict if name == VERIFIER else judge_scorer(name, spec.build(judges.settings(name)))
    return {eval_set: built[name] for eval_set, name in judge_of.items()}
