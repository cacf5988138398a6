"""What one curation run knows: the curate settings, and what the stage prepared for the steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CurationPlan:
    config: Any  # a CurateConfig (transforms/curation/config.py)
    decontamination_index: dict = field(default_factory=dict)  # n-gram hash -> eval source label
    control_rows: int = 0  # rows a control keeps in this iteration
    seed: int = 0  # the control sample's seed
    load_policy: Any = None  # a model_io.LoadPolicy for step models (semantic dedup); None is the safe default

    def keep_reason(self) -> str:
        return self.config.keep_reason(self.control_rows)
