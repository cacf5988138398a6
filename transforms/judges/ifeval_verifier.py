"""The verifier judge: the official IFEval instruction checkers (from `if_verifiable`).

A prompt's constraints are `instruction_ids` with aligned JSON `kwargs`. The score is the share of
instructions followed (strict); `passed` means all of them were. A checker that raises yields an error
judgment, which curation turns into a counted rejection; it never crashes the batch. The checkers that
split sentences read NLTK's Punkt model from a pinned package, offline (punkt_model.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from schemas.records import Candidate, Prompt
from transforms.judges import punkt_model
from transforms.judges.contract import JudgeResult, JudgeSettings, JudgeSpec, prompt_text
from transforms.settings import require

NAME = "ifeval_verifier"


@dataclass(frozen=True)
class Verdict:
    strict: tuple[bool, ...]
    loose: tuple[bool, ...]
    error: str = ""

    @property
    def score(self) -> float:
        return sum(self.strict) / len(self.strict) if self.strict else 0.0

    @property
    def passed(self) -> bool:
        return bool(self.strict) and all(self.strict) and not self.error


def _registry():
    import langdetect
    from if_verifiable.ifeval import instructions_registry

    punkt_model.install()
    langdetect.DetectorFactory.seed = 0  # langdetect is random unless seeded: keep verdicts reproducible
    return instructions_registry.INSTRUCTION_DICT


def parse_kwargs(kwargs: list[str] | list[dict]) -> list[dict]:
    return [json.loads(k) if isinstance(k, str) else dict(k) for k in kwargs]


def _built(instruction_id: str, kwargs: dict, prompt: str):
    """(an official checker, its description of what it requires); raises ValueError on unknown ids or bad kwargs."""
    registry = _registry()
    if instruction_id not in registry:
        raise ValueError(f"unknown instruction id {instruction_id!r}")
    checker = registry[instruction_id](instruction_id)
    try:
        description = checker.build_description(**{k: v for k, v in kwargs.items() if v is not None})
        args = checker.get_instruction_args()
        if args and "prompt" in args:
            description = checker.build_description(prompt=prompt)
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"bad kwargs for {instruction_id}: {kwargs!r} ({exc})") from exc
    return checker, description


def build_checker(instruction_id: str, kwargs: dict, prompt: str):
    """Instantiates an official checker; raises ValueError on unknown ids or bad kwargs."""
    return _built(instruction_id, kwargs, prompt)[0]


def describe(instruction_id: str, kwargs: dict, prompt: str) -> str:
    """What the official checker requires, in its own words (e.g. 'In your entire response, refrain from the use
    of any commas.'); raises ValueError on unknown ids or bad kwargs."""
    return _built(instruction_id, kwargs, prompt)[1]


def _loose_variants(response: str) -> list[str]:
    from if_verifiable.common import get_loose_transformations

    return get_loose_transformations(response)


def _one_line(message: str, limit: int = 300) -> str:
    return " ".join(message.split())[:limit]


def verify(response: str, instruction_ids: list[str], kwargs: list[str] | list[dict], prompt: str) -> Verdict:
    n = len(instruction_ids)
    if not response.strip():
        return Verdict((False,) * n, (False,) * n)
    try:
        parsed = parse_kwargs(kwargs)
        variants = _loose_variants(response)
        strict, loose = [], []
        for instruction_id, kw in zip(instruction_ids, parsed, strict=True):
            checker = build_checker(instruction_id, kw, prompt)
            strict.append(bool(checker.check_following(response)))
            loose.append(any(v.strip() and checker.check_following(v) for v in variants))
        return Verdict(tuple(strict), tuple(loose))
    except Exception as exc:  # noqa: BLE001 - any checker failure becomes a named rejection
        return Verdict((False,) * n, (False,) * n, error=f"{type(exc).__name__}: {_one_line(str(exc))}")


@dataclass(frozen=True)
class VerifierConfig(JudgeSettings):
    threshold: float = 1.0  # passed: at least this share of the prompt's constraints followed

    def pass_threshold(self) -> float | None:
        return self.threshold

    def validate(self, where: str) -> None:
        require(0 <= self.threshold <= 1, f"{where}.threshold must be in [0, 1]")


def verifier(config: VerifierConfig):
    def check(candidate: Candidate, prompt: Prompt) -> JudgeResult:
        verdict = verify(candidate["text"], prompt["instruction_ids"], prompt["kwargs"], prompt_text(prompt))
        detail = {"instruction_ids": list(prompt["instruction_ids"]), "strict": list(verdict.strict),
                  "loose": list(verdict.loose)}
        passed = bool(verdict.strict) and not verdict.error and verdict.score >= config.threshold
        return JudgeResult(verdict.score, passed, detail, verdict.error)

    return check


SPECS = (JudgeSpec(NAME, "rule", verifier, VerifierConfig, section="verifier"),)
