"""Judge policy: how the weighted judges' judgments combine into a row's score and verdict.

`all_pass`: every judge of weight > 0 passed; `weighted`: the weighted mean score reaches
`min_score`. Judges of weight 0 are only recorded. Off under the ablation controls, which sample
in its place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from schemas.reasons import BELOW_THRESHOLD, UNVERIFIABLE
from transforms.curation.steps import RowFilter
from transforms.judges.registry import REFERENCE
from transforms.settings import require


@dataclass(frozen=True)
class JudgePolicy:
    combine: str = "all_pass"  # all_pass: every weighted judge passed; weighted: weighted mean score >= min_score
    # judges with weight > 0 decide; judges left out weigh 0 and are only recorded and calibrated
    weights: dict[str, float] = field(default_factory=lambda: {REFERENCE: 1.0})
    min_score: float = 0.5  # for combine: weighted
    judge_auc_floor: float = 0.6  # refuse a deciding judge model whose ROC AUC vs the reference judge is lower
    allow_low_auc_judges: list[str] = field(default_factory=list)  # deciding judges to use below the floor, on purpose

    def validate(self, where: str) -> None:
        require(self.combine in ("all_pass", "weighted"), f"{where}.combine must be 'all_pass' or 'weighted'")
        for name, weight in self.weights.items():  # the names are checked against the judges in config.py
            require(weight >= 0, f"{where}.weights.{name} must be >= 0")
        require(any(w > 0 for w in self.weights.values()), f"{where}.weights: at least one judge needs weight > 0")
        require(0 <= self.min_score <= 1, f"{where}.min_score must be in [0, 1]")
        require(0 <= self.judge_auc_floor <= 1, f"{where}.judge_auc_floor must be in [0, 1]")

    def calibrated_gating(self, judges) -> list[str]:
        """The deciding model judges that must clear the calibration floor (`judges`: the JudgeConfig)."""
        return [n for n in self.gating() if judges.spec(n).kind == "model" and n not in self.allow_low_auc_judges]

    def gating(self) -> list[str]:
        return sorted(name for name, w in self.weights.items() if w > 0)

    def combined_score(self, by_judge: dict[str, dict]) -> float:
        gating = self.gating()
        total = sum(self.weights[n] for n in gating)
        return sum(self.weights[n] * by_judge[n]["score"] for n in gating) / total

    def passes(self, by_judge: dict[str, dict]) -> bool:
        if self.combine == "all_pass":
            return all(by_judge[n]["passed"] for n in self.gating())
        return self.combined_score(by_judge) >= self.min_score

    def describe(self) -> str:
        weights = ", ".join(f"{n}×{self.weights[n]:g}" for n in self.gating())
        return f"all of {weights} passed" if self.combine == "all_pass" else f"weighted({weights}) >= {self.min_score}"


def judge_policy(plan):
    if plan.config.control != "none":
        return None
    policy = plan.config

    def check(row):
        if REFERENCE in policy.gating() and not row["instruction_ids"]:
            return UNVERIFIABLE, "prompt has no verifiable constraints"
        by_judge = {j["judge"]: j for j in row["judgments"]}
        if not policy.passes(by_judge):
            return BELOW_THRESHOLD, json.dumps({n: by_judge[n]["score"] for n in policy.gating()}, sort_keys=True)
        return None

    return check


STEP = RowFilter("judge policy", (UNVERIFIABLE, BELOW_THRESHOLD), judge_policy)
