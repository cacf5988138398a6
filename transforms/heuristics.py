"""Heuristic quality judges: cheap checks on the answer text alone (and the prompt, for echoes).

Each heuristic is a judge like any other (score in [0, 1], passed, detail) and names the rejection
reason curation records when it fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from transforms.text_normalization import words


@dataclass(frozen=True)
class Check:
    score: float
    passed: bool
    detail: dict


@dataclass(frozen=True)
class Heuristic:
    judge: str
    reason: str  # the rejection reason when it fails
    check: Callable[..., Check]  # (text, finish_reason, prompt, config) -> Check


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def repeated_ngram_share(text: str, n: int) -> float:
    """Share of the answer's word n-grams that repeat an earlier one (0: none, near 1: a loop)."""
    grams = _ngrams(words(text), n)
    return (len(grams) - len(set(grams))) / len(grams) if grams else 0.0


def prompt_echo_share(text: str, prompt: str, n: int = 3) -> float:
    """Share of the answer's word n-grams (unigrams for very short answers) found in the prompt."""
    answer, source = words(text), words(prompt)
    n = min(n, len(answer)) or 1
    grams = _ngrams(answer, n)
    if not grams:
        return 0.0
    in_prompt = set(_ngrams(source, n))
    return sum(g in in_prompt for g in grams) / len(grams)


def check_empty(text: str, finish_reason: str, prompt: str, config) -> Check:
    empty = not text.strip()
    return Check(0.0 if empty else 1.0, not empty, {})


def check_echo(text: str, finish_reason: str, prompt: str, config) -> Check:
    share = prompt_echo_share(text, prompt)
    return Check(1.0 - share, share < config.max_prompt_echo, {"echo_share": round(share, 4)})


def check_truncation(text: str, finish_reason: str, prompt: str, config) -> Check:
    truncated = finish_reason == "length"
    return Check(0.0 if truncated else 1.0, not (truncated and config.drop_truncated), {"finish_reason": finish_reason})


def check_length(text: str, finish_reason: str, prompt: str, config) -> Check:
    count = len(words(text))
    ok = config.min_words <= count <= config.max_words
    return Check(1.0 if ok else 0.0, ok, {"words": count, "bounds": [config.min_words, config.max_words]})


def check_repetition(text: str, finish_reason: str, prompt: str, config) -> Check:
    share = repeated_ngram_share(text, config.repetition_ngram)
    return Check(1.0 - share, share <= config.max_repeated_ngram_share, {"repeated_ngram_share": round(share, 4)})


# In the order curation applies them: an empty answer is reported as empty, not also as too short.
HEURISTICS = (
    Heuristic("heuristic_empty", "empty", check_empty),
    Heuristic("heuristic_echo", "echoes_prompt", check_echo),
    Heuristic("heuristic_truncation", "truncated", check_truncation),
    Heuristic("heuristic_length", "length_out_of_bounds", check_length),
    Heuristic("heuristic_repetition", "repetitive", check_repetition),
)
REASON_OF = {h.judge: h.reason for h in HEURISTICS}
