"""Judgment records: the verifier's and the heuristics' judgments of one candidate.

A judgment is `candidate_id`, `judge`, `score` in [0, 1], `passed` and a JSON `detail`; a judge that
cannot score a candidate writes an error judgment (`detail.error`), which curation turns into a
counted rejection.
"""

from __future__ import annotations

import json

from transforms.heuristics import HEURISTICS
from transforms.ifeval_verifier import verify
from transforms.judge_names import VERIFIER


def judgment(candidate_id: str, judge: str, score: float, passed: bool, detail: dict) -> dict:
    return {"candidate_id": candidate_id, "judge": judge, "score": float(score), "passed": bool(passed),
            "detail": json.dumps(detail, sort_keys=True)}


def error_judgment(candidate_id: str, judge: str, error: str) -> dict:
    return judgment(candidate_id, judge, 0.0, False, {"error": error})


def judgment_error(j: dict) -> str:
    return json.loads(j["detail"]).get("error", "")


def prompt_text(prompt: dict) -> str:
    return prompt["messages"][-1]["content"]


def verifier_judgment(candidate: dict, prompt: dict, threshold: float) -> dict:
    verdict = verify(candidate["text"], prompt["instruction_ids"], prompt["kwargs"], prompt_text(prompt))
    detail = {"instruction_ids": list(prompt["instruction_ids"]), "strict": list(verdict.strict),
              "loose": list(verdict.loose)}
    if verdict.error:
        detail["error"] = verdict.error
    passed = bool(verdict.strict) and not verdict.error and verdict.score >= threshold
    return judgment(candidate["candidate_id"], VERIFIER, verdict.score, passed, detail)


def heuristic_judgments(candidate: dict, prompt: dict, config) -> list[dict]:
    out = []
    for h in HEURISTICS:
        check = h.check(candidate["text"], candidate["finish_reason"], prompt_text(prompt), config)
        out.append(judgment(candidate["candidate_id"], h.judge, check.score, check.passed, check.detail))
    return out


def rule_judgments(candidate: dict, prompts: dict, verifier_threshold: float, heuristics):
    """The verifier's and every heuristic's judgment of one candidate."""
    prompt = prompts.get(candidate["prompt_id"])
    if prompt is None:
        return [error_judgment(candidate["candidate_id"], VERIFIER, f"prompt {candidate['prompt_id']} not found")]
    return [verifier_judgment(candidate, prompt, verifier_threshold), *heuristic_judgments(candidate, prompt, heuristics)]
