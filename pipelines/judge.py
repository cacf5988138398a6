"""Stage `judge` (Beam): every enabled judge's judgment of every candidate, and the calibration report."""

from __future__ import annotations

import json

import apache_beam as beam

from pipelines.config import Config
from pipelines.run_guard import guarded
from pipelines.runtime import git_revision, params_hash, run_pipeline
from schemas.records import JUDGMENT
from transforms.io import faults
from transforms.io.parquet_io import (
    SHARD_GLOB,
    WriteSortedShards,
    clear_shards,
    read_rows,
    shard_entries,
    write_manifest,
)
from transforms.io.staging import replace_file
from transforms.judges.calibration import calibration_report, plot_calibration
from transforms.judges.model_judging import ModelJudge
from transforms.judges.registry import REFERENCE
from transforms.judges.rules import enabled_checks, rule_judgments


def calibrated_judges(config: Config) -> list[str]:
    """The enabled judges, other than the reference, that have a threshold: their scores are calibrated against
    the reference judge's verdicts."""
    cfg = config.judge
    return [name for name in cfg.enabled() if name != REFERENCE and cfg.threshold(name) is not None]


def graph(config: Config, iteration: str):
    """The Beam graph of this stage, as a function that adds it to a pipeline."""
    cfg, layout = config.judge, config.layout
    checks = enabled_checks(cfg)
    handlers = {spec.name: spec.build(cfg.settings(spec.name), load_policy=config.security.load_policy(),
                                      where=f"judge.{spec.params_key}")
                for spec in cfg.enabled_specs("model")}

    def build(p):
        prompts = beam.pvalue.AsDict(
            p
            | "ReadPrompts" >> beam.io.ReadFromParquet(layout.prompts("train"))
            | "KeyPrompts" >> beam.Map(lambda r: (r["prompt_id"], r))
        )
        candidates = p | "ReadCandidates" >> beam.io.ReadFromParquet(f"{layout.candidates(iteration)}/{SHARD_GLOB}")
        rules = candidates | "RulesAndHeuristics" >> beam.FlatMap(rule_judgments, prompts=prompts, checks=checks)
        models = [candidates | f"Judge_{name}" >> ModelJudge(name, handler, prompts)
                  for name, handler in handlers.items()]
        _ = (
            [rules, *models]
            | "AllJudgments" >> beam.Flatten()
            | "Write" >> WriteSortedShards(layout.judgments(iteration), JUDGMENT, ("candidate_id", "judge"),
                                           cfg.num_shards)
        )

    return build


def main(config: Config, iteration: str, beam_args: list[str]) -> dict:
    with guarded("judge", iteration):
        return _judge(config, iteration, beam_args)


def _judge(config: Config, iteration: str, beam_args: list[str]) -> dict:
    cfg = config.judge
    build = graph(config, iteration)
    target = config.layout.judgments(iteration)
    clear_shards(target)
    run_pipeline(build, beam_args)
    report = write_calibration(config, iteration)
    faults.reached("before_manifest")
    shards = shard_entries(target)
    manifest = {"stage": "judge", "iteration": iteration, "rows": sum(s["rows"] for s in shards), "shards": shards,
                "judges": cfg.enabled(),
                "judge_models": {spec.name: cfg.settings(spec.name).model for spec in cfg.enabled_specs("model")},
                "calibration": report, "params_hash": params_hash(cfg), "git_revision": git_revision()}
    write_manifest(target, manifest)
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
