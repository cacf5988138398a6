"""The JSON extraction task's verifier, a custom judge (`judge.custom` in this folder's params.yaml).

Each prompt gives a sentence and asks for a JSON object with named keys; the prompt file's
`metadata.expected` holds the right object. The first JSON object in the answer (inside a ```json
fence or not) is compared with it: the score is the share of expected keys whose value matches
(numbers may be written as strings), and the answer passes only when every key matches and there is
no other key."""

from __future__ import annotations

import json

DECODER = json.JSONDecoder()


def first_object(response: str) -> dict | None:
    """The first JSON object in the text, or None."""
    at = response.find("{")
    while at >= 0:
        try:
            value, _ = DECODER.raw_decode(response, at)
        except json.JSONDecodeError:
            at = response.find("{", at + 1)
            continue
        if isinstance(value, dict):
            return value
        at = response.find("{", at + 1)
    return None


def _same(given, expected) -> bool:
    if isinstance(expected, (int, float)) and not isinstance(given, bool):
        try:
            return float(str(given).strip()) == float(expected)
        except ValueError:
            return False
    return isinstance(given, str) and given.strip() == expected


def fields_match(prompt: dict, response: str) -> tuple[float, bool, dict]:
    expected = prompt["metadata"]["expected"]
    given = first_object(response)
    if given is None:
        return 0.0, False, {"object": None}
    matched = sorted(key for key in expected if key in given and _same(given[key], expected[key]))
    extra = sorted(set(given) - set(expected))
    score = len(matched) / len(expected)
    return score, score == 1.0 and not extra, {"matched": matched, "extra_keys": extra}
