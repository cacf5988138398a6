"""The `curate:` params section: the judge policy, selection and control settings at its top level,
preference pairs, and a sub-section for each step of the chain that has settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from transforms.curation.control_sample import ControlConfig
from transforms.curation.decontamination import DecontaminationConfig
from transforms.curation.judge_policy import JudgePolicy
from transforms.curation.near_dedup import NearDedupConfig
from transforms.curation.preference_pairs import PairsConfig
from transforms.curation.selection import SelectionPolicy
from transforms.curation.semantic_dedup import SemanticDedupConfig
from transforms.settings import require


@dataclass(frozen=True)
class CurateStageConfig(ControlConfig, SelectionPolicy, JudgePolicy):
    pairs: PairsConfig = field(default_factory=PairsConfig)
    num_shards: int = 2  # kept, rejected and pairs shards per iteration, at least (more when one would outgrow a worker)

    def validate(self, where: str) -> None:
        for part in (JudgePolicy, SelectionPolicy, ControlConfig):
            part.validate(self, where)
        require(self.num_shards >= 1, f"{where}.num_shards must be at least 1")

    def keep_reason(self, control_rows: int) -> str:
        if self.control != "none":
            return f"control {self.control}: random sample of {control_rows}"
        return f"passed {JudgePolicy.describe(self)}; {SelectionPolicy.describe(self)}"


@dataclass(frozen=True)
class CurateConfig(CurateStageConfig):  # a chain step with settings adds its field here: curate.<section>, in chain order
    decontamination: DecontaminationConfig = field(default_factory=DecontaminationConfig)
    near_dedup: NearDedupConfig = field(default_factory=NearDedupConfig)
    semantic_dedup: SemanticDedupConfig = field(default_factory=SemanticDedupConfig)
