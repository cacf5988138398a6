"""The Beam graph that judges a folder of candidates with every enabled judge: the judge stage's, and curate's
for revisions."""

from __future__ import annotations

import apache_beam as beam

from pipelines.config import Config, calibration_samples
from schemas.records import JUDGMENT
from transforms.io.parquet_io import SHARD_GLOB, WriteSortedShards, shard_index
from transforms.io.progress import ShowProgress
from transforms.judges.calibration_sample import CalibrationSample
from transforms.judges.model_judging import ModelJudge
from transforms.judges.prompt_join import WithPrompts
from transforms.judges.registry import REFERENCE
from transforms.judges.rules import enabled_checks, rule_judgments


def model_handlers(config: Config) -> dict:
    """{judge: its Beam model handler}, each model checked to load (a failure names its params key)."""
    cfg = config.judge
    return {spec.name: spec.build(cfg.settings(spec.name), load_policy=config.security.load_policy(),
                                  where=f"judge.{spec.params_key}")
            for spec in cfg.enabled_specs("model")}


def graph(config: Config, iteration: str, shards: list[int] | None = None, total: int = 0,
          handlers: dict | None = None, source: str = "", target: str = ""):
    """The Beam graph judging the candidates of the given judgment shards (default: all), as a function
    that adds it to a pipeline. `total`: the judgments the whole stage run makes, for its progress line.
    `source` and `target`: the candidates' and judgments' folders (default: the iteration's; revision
    judges its revisions with this same graph)."""
    cfg, layout, n = config.judge, config.layout, config.judge.num_shards
    source, target = source or layout.candidates(iteration), target or layout.judgments(iteration)
    shards = list(range(n)) if shards is None else shards
    checks = enabled_checks(cfg)
    handlers = model_handlers(config) if handlers is None else handlers
    samples = calibration_samples(config)

    def build(p):
        prompts = p | "ReadPrompts" >> beam.io.ReadFromParquet(layout.prompts("train"))
        every_candidate = p | "ReadCandidates" >> beam.io.ReadFromParquet(
            f"{source}/{SHARD_GLOB}")
        candidates = every_candidate | "OnlyTheseShards" >> beam.Filter(
            lambda r: shard_index(r["candidate_id"], n) in shards)
        with_prompts = (candidates, prompts) | "WithPrompts" >> WithPrompts()
        rule_results = with_prompts | "RulesAndHeuristics" >> beam.FlatMap(lambda pair: rule_judgments(*pair, checks))
        if samples:  # drawn from every shard's candidates: the same sample whichever shards this run judges
            sampled = beam.pvalue.AsSingleton(
                (every_candidate, prompts) | "EveryWithPrompt" >> WithPrompts()
                | "CalibrationSample" >> CalibrationSample(list(samples.values()), checks[REFERENCE], config.seed))
        models = [(with_prompts | f"Sample_{name}" >> beam.Filter(
                       lambda pair, sampled, size: pair[0]["candidate_id"] in sampled[size], sampled=sampled,
                       size=samples[name])
                   if name in samples else with_prompts) | f"Judge_{name}" >> ModelJudge(name, handler)
                  for name, handler in handlers.items()]
        _ = (
            [rule_results, *models]
            | "AllJudgments" >> beam.Flatten()
            | "Progress" >> beam.ParDo(ShowProgress(f"judge@{iteration}", total, "judgments"))
            | "Write" >> WriteSortedShards(target, JUDGMENT, ("candidate_id", "judge"), n, only=shards)
        )

    return build
