"""The arithmetic task's verifier: a custom judge (`judge.custom` in this folder's params.yaml).

Each prompt asks for a sum and for a last line `Answer: <number>`; the prompt file carries the right
sum as `metadata.answer`. Score 1.0: the answer line holds the right number; 0.5: an answer line with a
wrong number; 0.0: no answer line. Only the right number passes."""

from __future__ import annotations

import re

ANSWER_LINE = re.compile(r"^\s*\**answer\**\s*[:=]\s*\**\s*(-?[\d,]+)", re.IGNORECASE | re.MULTILINE)


def exact_answer(prompt: dict, response: str) -> tuple[float, bool, dict]:
    expected = str(prompt["metadata"]["answer"])
    lines = ANSWER_LINE.findall(response)
    if not lines:
        return 0.0, False, {"expected": expected, "given": None}
    given = lines[-1].replace(",", "")
    correct = given == expected
    return (1.0 if correct else 0.5), correct, {"expected": expected, "given": given}
