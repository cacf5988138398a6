"""The `judge:` params section: the stage's settings, and one sub-section per judge settings class in the registry."""

from __future__ import annotations

from dataclasses import dataclass, field

from transforms.judges.calibration import CalibrationConfig
from transforms.judges.contract import JudgeSettings, JudgeSpec
from transforms.judges.custom_judge import CustomJudgeConfig, custom_spec
from transforms.judges.heuristics import HeuristicsConfig
from transforms.judges.ifeval_verifier import VerifierConfig
from transforms.judges.llm_judge import LlmJudgeConfig
from transforms.judges.registry import BY_NAME, JUDGES
from transforms.judges.scoring_models import ModelJudgeConfig
from transforms.settings import require


@dataclass(frozen=True)
class JudgeStageConfig:
    num_shards: int = 4  # judgments shards per iteration
    # a rerun after a crash keeps the shards already complete and makes the rest (on a local runner each shard is its own
    # run, so they complete one at a time; a distributed runner makes them in one job); false: every shard is made again
    resumable: bool = True
    # judges of your own: [{name, function: "package.module:callable"}] (README, "Bring your own")
    custom: list[CustomJudgeConfig] = field(default_factory=list)
    # what the calibrated judges (models, custom) are measured against besides the verifier (transforms/judges/labels.py)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)

    def validate(self, where: str) -> None:
        require(self.num_shards >= 1, f"{where}.num_shards must be at least 1")
        names = [c.name for c in self.custom]
        for i, name in enumerate(names):
            require(name not in BY_NAME, f"{where}.custom[{i}].name: {name!r} is a built-in judge; pick another name")
            require(name not in names[:i], f"{where}.custom[{i}].name: {name!r} is declared twice")

    def specs(self) -> tuple[JudgeSpec, ...]:
        """Every judge known to this run, built in and custom, in the order they run and are reported."""
        return JUDGES + tuple(custom_spec(c) for c in self.custom)

    def spec(self, judge: str) -> JudgeSpec:
        for spec in self.specs():
            if spec.name == judge:
                return spec
        raise KeyError(f"unknown judge {judge!r} (known: {', '.join(self.known())})")

    def known(self) -> list[str]:
        return [spec.name for spec in self.specs()]

    def settings(self, judge: str) -> JudgeSettings | None:
        """The settings of one judge (None for a judge that has none)."""
        spec = self.spec(judge)
        return getattr(self, spec.params_key) if spec.config else None

    def _settings_or_defaults(self, judge: str) -> JudgeSettings:
        settings = self.settings(judge)
        return JudgeSettings() if settings is None else settings

    def is_enabled(self, judge: str) -> bool:
        return self._settings_or_defaults(judge).is_enabled()

    def enabled(self) -> list[str]:
        """The judges that run, in registry order, then the custom ones."""
        return [spec.name for spec in self.specs() if self.is_enabled(spec.name)]

    def enabled_specs(self, kind: str) -> list[JudgeSpec]:
        return [spec for spec in self.specs() if spec.kind == kind and self.is_enabled(spec.name)]

    def calibration_samples(self, deciding: list[str]) -> dict[str, int]:
        """{judge model: its sample size} of the enabled judge models that score a calibration sample only: those
        with a `calibration_sample` that do not decide (`deciding`: the judges of weight > 0 in curate.weights)."""
        return {spec.name: size for spec in self.enabled_specs("model")
                if spec.name not in deciding and (size := self._settings_or_defaults(spec.name).sample_size())}

    def threshold(self, judge: str) -> float | None:
        return self._settings_or_defaults(judge).pass_threshold()


@dataclass(frozen=True)
class JudgeConfig(JudgeStageConfig):  # a judge with settings adds its field here: judge.<section>, in registry order
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    heuristics: HeuristicsConfig = field(default_factory=HeuristicsConfig)
    llm_judge: LlmJudgeConfig = field(default_factory=LlmJudgeConfig)
    reward_model: ModelJudgeConfig = field(default_factory=ModelJudgeConfig)
