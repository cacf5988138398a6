"""LLM-as-judge, the pure parts: the rubric prompt and the expected rating from next-token logits.

The judge never writes free text: the rubric asks for one digit, and the score is the expected
rating under the model's next-token distribution restricted to the rating digits, mapped to [0, 1].
"""

from __future__ import annotations

import math

RATINGS = ("1", "2", "3", "4", "5")

RUBRIC = (
    "You are grading whether a response follows every instruction in a prompt.\n\n"
    "[Prompt]\n{prompt}\n[End of prompt]\n\n"
    "[Response]\n{response}\n[End of response]\n\n"
    "Rate the response from 1 to 5:\n"
    "1 = ignores the instructions, 2 = follows few of them, 3 = follows about half, "
    "4 = follows almost all, 5 = follows every instruction exactly.\n"
    "Reply with a single digit."
)


def rubric_messages(prompt: str, response: str) -> list[dict]:
    return [{"role": "user", "content": RUBRIC.format(prompt=prompt, response=response)}]


def rating_token_ids(tokenizer) -> list[int]:
    """The token id of each rating digit; refuses a tokenizer that splits a digit."""
    ids = []
    for rating in RATINGS:
        encoded = tokenizer.encode(rating, add_special_tokens=False)
        if len(encoded) != 1:
            raise ValueError(f"judge tokenizer encodes rating {rating!r} as {len(encoded)} tokens; need exactly 1")
        ids.append(encoded[0])
    return ids


def expected_rating(rating_logits: list[float]) -> tuple[float, list[float]]:
    """Softmax over the rating tokens' logits; returns (expected rating mapped to [0, 1], probabilities)."""
    if len(rating_logits) != len(RATINGS):
        raise ValueError(f"expected {len(RATINGS)} rating logits, got {len(rating_logits)}")
    if not all(math.isfinite(x) for x in rating_logits):
        raise ValueError(f"rating logits must be finite, got {rating_logits}")
    top = max(rating_logits)
    weights = [math.exp(x - top) for x in rating_logits]
    total = sum(weights)
    probabilities = [w / total for w in weights]
    expected = sum(p * (i + 1) for i, p in enumerate(probabilities))
    return (expected - 1) / (len(RATINGS) - 1), probabilities
