"""Heuristic judges: cheap checks on the answer text alone (and the prompt, for echoes).

Each is a judge like any other (score in [0, 1], passed, detail) that names the rejection reason
curation records when it fails. They share the `judge.heuristics` settings. In the registry they
stand in the order curation applies them: an empty answer is reported as empty, not also as too short.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.reasons import (
    ECHOES_PROMPT,
    EMPTY,
    LENGTH,
    LENGTH_OUT_OF_BOUNDS,
    REPETITIVE,
    TRUNCATED,
)
from schemas.records import Candidate, Prompt
from transforms.health.answer_checks import ARTIFACTS
from transforms.judges.contract import JudgeResult, JudgeSettings, JudgeSpec, prompt_text
from transforms.settings import require
from transforms.text_normalization import words


@dataclass(frozen=True)
class HeuristicsConfig(JudgeSettings):
    # every default task asks for a few sentences or more; shorter answers (such as "P.S. I hope
    # this helps.") pass only by gaming a check
    min_words: int = 15
    max_words: int = 400  # longer answers are rejected as length_out_of_bounds
    repetition_ngram: int = 3  # word n-grams counted for the repetition share
    max_repeated_ngram_share: float = 0.3  # share of n-gram occurrences that repeat an earlier one
    max_prompt_echo: float = 0.8  # share of the answer's word 3-grams copied from the prompt that makes it an echo
    drop_truncated: bool = True  # reject answers that hit max_new_tokens
    # reject format artifacts: a paragraph opening on a quote it never closes, unbalanced quotes or
    # brackets in a finished answer, chat-template markup. Judged and recorded either way.
    reject_artifacts: bool = False

    def validate(self, where: str) -> None:
        require(self.min_words >= 1, f"{where}.min_words must be at least 1")
        require(self.max_words >= self.min_words, f"{where}.max_words must be >= min_words")
        require(self.repetition_ngram >= 1, f"{where}.repetition_ngram must be at least 1")
        require(0 < self.max_repeated_ngram_share <= 1, f"{where}.max_repeated_ngram_share must be in (0, 1]")
        require(0 < self.max_prompt_echo <= 1, f"{where}.max_prompt_echo must be in (0, 1]")


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


def empty(config: HeuristicsConfig):
    def check(candidate: Candidate, prompt: Prompt) -> JudgeResult:
        is_empty = not candidate["text"].strip()
        return JudgeResult(0.0 if is_empty else 1.0, not is_empty)

    return check


def echo(config: HeuristicsConfig):
    def check(candidate: Candidate, prompt: Prompt) -> JudgeResult:
        share = prompt_echo_share(candidate["text"], prompt_text(prompt))
        return JudgeResult(1.0 - share, share < config.max_prompt_echo, {"echo_share": round(share, 4)})

    return check


def truncation(config: HeuristicsConfig):
    def check(candidate: Candidate, prompt: Prompt) -> JudgeResult:
        finish = candidate["finish_reason"]
        truncated = finish == LENGTH
        return JudgeResult(0.0 if truncated else 1.0, not (truncated and config.drop_truncated),
                           {"finish_reason": finish})

    return check


def length(config: HeuristicsConfig):
    def check(candidate: Candidate, prompt: Prompt) -> JudgeResult:
        count = len(words(candidate["text"]))
        ok = config.min_words <= count <= config.max_words
        return JudgeResult(1.0 if ok else 0.0, ok, {"words": count, "bounds": [config.min_words, config.max_words]})

    return check


def repetition(config: HeuristicsConfig):
    def check(candidate: Candidate, prompt: Prompt) -> JudgeResult:
        share = repeated_ngram_share(candidate["text"], config.repetition_ngram)
        return JudgeResult(1.0 - share, share <= config.max_repeated_ngram_share,
                           {"repeated_ngram_share": round(share, 4)})

    return check


def artifact(name: str):
    """The heuristic for one of the format artifacts the health metrics count (answer_checks.ARTIFACTS)."""
    found = ARTIFACTS[name]

    def build(config: HeuristicsConfig):
        def check(candidate: Candidate, prompt: Prompt) -> JudgeResult:
            flagged = found(candidate["text"], candidate["finish_reason"] != LENGTH, prompt["instruction_ids"])
            return JudgeResult(0.0 if flagged else 1.0, not (flagged and config.reject_artifacts))

        return check

    return build


def _heuristic(name: str, reason: str, build) -> JudgeSpec:
    return JudgeSpec(name, "heuristic", build, HeuristicsConfig, section="heuristics", reason=reason)


SPECS = (
    _heuristic("heuristic_empty", EMPTY, empty),
    _heuristic("heuristic_echo", ECHOES_PROMPT, echo),
    _heuristic("heuristic_truncation", TRUNCATED, truncation),
    _heuristic("heuristic_length", LENGTH_OUT_OF_BOUNDS, length),
    _heuristic("heuristic_repetition", REPETITIVE, repetition),
    *(_heuristic(f"heuristic_{name}", name, artifact(name)) for name in ARTIFACTS),
)
