"""The judge contract: what a judge is, and what it returns.

A judge is declared once, as a `JudgeSpec` in its own module, and listed in `registry.JUDGES`.
Everything else derives from that list: the params sections under `judge:`, which judges run,
their thresholds, the judge stage's graph, the weights curate accepts, the calibration report and
the heuristics step of the curation funnel.

Kinds:
- `rule`: a pure function of the candidate and its prompt; curate can weigh it (`curate.weights`).
- `heuristic`: a rule whose failure rejects the candidate in curation, with the spec's `reason`.
- `model`: a Beam `ModelHandler` over `ScoreRequest`s, run by RunInference (loaded once per worker);
  curate can weigh it once its calibration against the reference judge clears the floor.
- `custom`: a rule from the user's own code, declared in params (`judge.custom`, custom_judge.py);
  run like a rule, weighed and calibrated like a model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from schemas.records import Candidate, Judgment, Prompt

KINDS = ("rule", "heuristic", "model", "custom")


@dataclass(frozen=True)
class JudgeResult:
    """One judge's verdict on one candidate. A judge that cannot score it sets `error` instead."""

    score: float  # in [0, 1]
    passed: bool
    detail: dict = field(default_factory=dict)
    error: str = ""

    @classmethod
    def failed(cls, error: str, detail: dict | None = None) -> JudgeResult:
        return cls(0.0, False, dict(detail or {}), error)

    def record(self, candidate_id: str, judge: str) -> Judgment:
        detail = {**self.detail, "error": self.error} if self.error else self.detail
        return {"candidate_id": candidate_id, "judge": judge, "score": float(self.score), "passed": bool(self.passed),
                "detail": json.dumps(detail, sort_keys=True)}


class JudgeSettings:
    """What the stages ask of a judge's settings class (its `JudgeSpec.config`, which subclasses this): the
    defaults here are the answers of settings without that knob."""

    def is_enabled(self) -> bool:
        """The judge runs."""
        return True

    def pass_threshold(self) -> float | None:
        """The score at which it passes a candidate (None: it has no threshold of its own)."""
        return None

    def sample_size(self) -> int:
        """Not deciding: how many candidates it scores, for calibration only (0: every one)."""
        return 0

    def runs_local_model(self) -> bool:
        """It runs a model on this machine (not on a server)."""
        return False


# A rule or heuristic: (candidate, its prompt) -> JudgeResult.
Check = Callable[[Candidate, Prompt], JudgeResult]


@dataclass(frozen=True)
class JudgeSpec:
    name: str  # as it appears in judgments, curate.weights and reports
    kind: str  # one of KINDS
    # rule / heuristic / custom: config -> Check; model: (config, LoadPolicy) -> ModelHandler of ScoreRequest -> JudgeResult
    build: Callable[..., Any]
    config: type[JudgeSettings] | None = None  # its settings, read from params `judge.<section>`; None: it has none
    section: str = ""  # the params key under `judge:` (default: the name); judges may share one
    reason: str = ""  # heuristic: the rejection reason its failure stands for

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"judge {self.name}: kind must be one of {KINDS}, not {self.kind!r}")
        if (self.kind == "heuristic") != bool(self.reason):
            raise ValueError(f"judge {self.name}: a heuristic names its rejection reason, and only a heuristic does")

    @property
    def params_key(self) -> str:
        return self.section or self.name

    @property
    def weighable(self) -> bool:
        return self.kind != "heuristic"

    @property
    def calibrated(self) -> bool:
        """Its scores are measured against the calibration labels (models and custom judges)."""
        return self.kind in ("model", "custom")


def judgment_error(judgment: Judgment) -> str:
    return json.loads(judgment["detail"]).get("error", "")


def prompt_text(prompt: Mapping[str, Any]) -> str:
    """The last message of a record holding a prompt's `messages` (a prompt, or a row joined with its prompt)."""
    return prompt["messages"][-1]["content"]
