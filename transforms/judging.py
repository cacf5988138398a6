"""Turns a candidate and its prompt into a verifier judgment record."""

from __future__ import annotations

import json

from transforms.ifeval_verifier import JUDGE_NAME, verify


def judge_candidate(candidate: dict, prompts: dict) -> dict:
    prompt = prompts.get(candidate["prompt_id"])
    if prompt is None:
        return {"candidate_id": candidate["candidate_id"], "judge": JUDGE_NAME, "score": 0.0, "passed": False,
                "detail": json.dumps({"error": f"prompt {candidate['prompt_id']} not found"})}
    verdict = verify(candidate["text"], prompt["instruction_ids"], prompt["kwargs"], prompt["messages"][-1]["content"])
    detail = {"instruction_ids": list(prompt["instruction_ids"]), "strict": list(verdict.strict),
              "loose": list(verdict.loose)}
    if verdict.error:
        detail["error"] = verdict.error
    return {"candidate_id": candidate["candidate_id"], "judge": JUDGE_NAME, "score": verdict.score,
            "passed": verdict.passed, "detail": json.dumps(detail, sort_keys=True)}


def judgment_error(judgment: dict) -> str:
    return json.loads(judgment["detail"]).get("error", "")
