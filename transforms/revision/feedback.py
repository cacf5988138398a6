"""The follow-up turn of a revision: the instructions an answer failed, each in its official checker's words.

Which instructions failed comes from the verifier's judgment of the answer (its `strict` verdicts, aligned with
the prompt's `instruction_ids`); what each requires comes from the checker itself (`ifeval_verifier.describe`).
"""

from __future__ import annotations

import json

from schemas.records import JudgedRow
from transforms.judges.contract import prompt_text
from transforms.judges.ifeval_verifier import describe, parse_kwargs
from transforms.judges.registry import REFERENCE

INTRO = "Your answer does not follow every instruction of my request. A checker found that it breaks these:"
OUTRO = "Write a new answer to my original request that follows all of its instructions. Reply with the answer only."


def failed_instructions(row: JudgedRow) -> list[tuple[str, dict]]:
    """(instruction id, its kwargs) of each instruction the verifier found broken; [] when it judged none."""
    verdict = next((j for j in row["judgments"] if j["judge"] == REFERENCE), None)
    if verdict is None:
        return []
    strict = json.loads(verdict["detail"]).get("strict", [])
    kwargs = parse_kwargs(row["kwargs"])
    if len(strict) != len(row["instruction_ids"]):
        return []  # a verdict on other instructions than the prompt's (or an error): nothing to name
    return [(iid, kw) for iid, kw, ok in zip(row["instruction_ids"], kwargs, strict, strict=True) if not ok]


def feedback_turn(row: JudgedRow) -> str:
    """The user turn that follows the failed answer."""
    lines = [f"- {describe(iid, kw, prompt_text(row))}" for iid, kw in failed_instructions(row)]
    return "\n".join([INTRO, *lines, OUTRO])
