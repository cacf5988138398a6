"""Stage `judge` (Beam): every enabled judge's judgment of every candidate, and the calibration report.

A candidate's judgments all go to the shard its candidate_id hashes to. With `judge.resumable`, each
shard is its own Beam run and is recorded when complete, so a rerun after a crash judges only the
candidates of the shards that were not finished (see pipelines/resume.py).
"""

from __future__ import annotations

import json
import sys

import apache_beam as beam

from pipelines.config import Config
from pipelines.resume import ShardProgress, run_shards
from pipelines.run_guard import guarded
from pipelines.runtime import code_fingerprint, git_revision, params_hash, run_pipeline
from schemas.records import JUDGMENT
from transforms.io import faults, parquet_io
from transforms.io.parquet_io import (
    SHARD_GLOB,
    WriteSortedShards,
    file_sha256,
    read_rows,
    read_table,
    shard_entries,
    shard_index,
    write_manifest,
)
from transforms.io.progress import ShowProgress
from transforms.io.staging import replace_file
from transforms.judges import contract, endpoint_judge, model_judging, rules, scoring_models
from transforms.judges.calibration import calibration_report, plot_calibration
from transforms.judges.model_judging import ModelJudge
from transforms.judges.registry import JUDGES, REFERENCE
from transforms.judges.rules import enabled_checks, rule_judgments


def calibrated_judges(config: Config) -> list[str]:
    """The enabled judge models and custom judges: their scores are calibrated against the reference judge's
    verdicts."""
    cfg = config.judge
    return [spec.name for spec in cfg.specs() if spec.calibrated and cfg.is_enabled(spec.name)]


def model_handlers(config: Config) -> dict:
    """{judge: its Beam model handler}, each model checked to load (a failure names its params key)."""
    cfg = config.judge
    return {spec.name: spec.build(cfg.settings(spec.name), load_policy=config.security.load_policy(),
                                  where=f"judge.{spec.params_key}")
            for spec in cfg.enabled_specs("model")}


def graph(config: Config, iteration: str, shards: list[int] | None = None, total: int = 0,
          handlers: dict | None = None):
    """The Beam graph judging the candidates of the given judgment shards (default: all), as a function
    that adds it to a pipeline. `total`: the judgments the whole stage run makes, for its progress line."""
    cfg, layout, n = config.judge, config.layout, config.judge.num_shards
    shards = list(range(n)) if shards is None else shards
    checks = enabled_checks(cfg)
    handlers = model_handlers(config) if handlers is None else handlers

    def build(p):
        prompts = beam.pvalue.AsDict(
            p
            | "ReadPrompts" >> beam.io.ReadFromParquet(layout.prompts("train"))
            | "KeyPrompts" >> beam.Map(lambda r: (r["prompt_id"], r))
        )
        candidates = (
            p
            | "ReadCandidates" >> beam.io.ReadFromParquet(f"{layout.candidates(iteration)}/{SHARD_GLOB}")
            | "OnlyTheseShards" >> beam.Filter(lambda r: shard_index(r["candidate_id"], n) in shards)
        )
        rule_results = candidates | "RulesAndHeuristics" >> beam.FlatMap(rule_judgments, prompts=prompts, checks=checks)
        models = [candidates | f"Judge_{name}" >> ModelJudge(name, handler, prompts)
                  for name, handler in handlers.items()]
        _ = (
            [rule_results, *models]
            | "AllJudgments" >> beam.Flatten()
            | "Progress" >> beam.ParDo(ShowProgress(f"judge@{iteration}", total, "judgments"))
            | "Write" >> WriteSortedShards(layout.judgments(iteration), JUDGMENT, ("candidate_id", "judge"), n,
                                           only=shards)
        )

    return build


def main(config: Config, iteration: str, beam_args: list[str]) -> dict:
    with guarded("judge", iteration, config):
        return _judge(config, iteration, beam_args)


def fingerprint(config: Config, iteration: str, models: dict) -> str:
    """What determines the judgments: params, the judge models' identities (`models`), prompts, candidates and code."""
    cfg, layout = config.judge, config.layout
    # a model judge's `build` (a function, or a classmethod of its handler) is defined in the judge's module
    judge_modules = sorted({getattr(spec.build, "__self__", spec.build).__module__ for spec in JUDGES}
                           | {custom.function.split(":")[0] for custom in cfg.custom})
    code = code_fingerprint(sys.modules[__name__], contract, model_judging, rules, scoring_models, endpoint_judge,
                            parquet_io, *(sys.modules[name] for name in judge_modules))
    return params_hash(cfg, models, file_sha256(layout.prompts("train")), shard_entries(layout.candidates(iteration)),
                       code)


def _judge(config: Config, iteration: str, beam_args: list[str]) -> dict:
    cfg = config.judge
    target = config.layout.judgments(iteration)
    handlers = model_handlers(config)  # before hashing the judge models: a missing one is named by its key
    models = {spec.name: cfg.settings(spec.name).identity() for spec in cfg.enabled_specs("model")}  # weights, or server
    progress = ShardProgress(f"judge@{iteration}", target, fingerprint(config, iteration, models))
    candidate_ids = read_table(config.layout.candidates(iteration)).column("candidate_id").to_pylist()
    run_shards(progress, cfg.num_shards, cfg.resumable,
               lambda shards, total: run_pipeline(graph(config, iteration, shards, total, handlers), beam_args),
               "judgments", "judging",
               lambda shards: len(cfg.enabled()) * sum(shard_index(c, cfg.num_shards) in shards for c in candidate_ids))
    report = write_calibration(config, iteration)
    faults.reached("before_manifest")
    shards = shard_entries(target)
    manifest = {"stage": "judge", "iteration": iteration, "rows": sum(s["rows"] for s in shards), "shards": shards,
                "judges": cfg.enabled(),
                "judge_models": models,
                "calibration": report, "params_hash": params_hash(cfg), "git_revision": git_revision()}
    write_manifest(target, manifest)
    progress.clear()
    return manifest


def write_calibration(config: Config, iteration: str) -> dict:
    judgments = read_rows(config.layout.judgments(iteration))
    report = calibration_report(judgments, {name: config.judge.threshold(name) for name in calibrated_judges(config)})
    json_path, png_path = config.layout.calibration(iteration)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"iteration": iteration, "label": f"{REFERENCE} passed", "judges": report},
                         indent=2, sort_keys=True) + "\n"
    replace_file(json_path, lambda tmp: tmp.write_text(payload))
    replace_file(png_path, lambda tmp: plot_calibration(report, f"{iteration}: judge scores vs the verifier", str(tmp)))
    return report


def calibration_table(report: dict) -> str:
    if not report:
        return "no judge models enabled: nothing to calibrate"
    lines = [f"{'judge':<14}{'n':>6}{'passed':>8}{'ROC AUC':>9}{'acc@thr':>9}"]
    for name, s in sorted(report.items()):
        lines.append(f"{name:<14}{s['candidates']:>6}{s['verifier_passed']:>8}{str(s['roc_auc']):>9}"
                     f"{str(s['accuracy_at_threshold']):>9}")
    return "\n".join(lines)
