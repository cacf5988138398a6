"""Stage `judge` (Beam): every enabled judge's judgment of every candidate, and the calibration report."""

from __future__ import annotations

import json
from pathlib import Path

import apache_beam as beam

from pipelines.config import Config
from pipelines.generate import out_dir as candidates_dir
from pipelines.run_guard import guarded
from pipelines.runtime import git_revision, params_hash, run_pipeline
from schemas.records import JUDGMENT
from transforms import faults
from transforms.calibration import calibration_report, plot_calibration
from transforms.heuristics import HEURISTICS
from transforms.judge_names import LLM_JUDGE, MODEL_JUDGES, REWARD_MODEL
from transforms.judging import rule_judgments
from transforms.model_io import check_loadable
from transforms.model_judging import ModelJudge
from transforms.parquet_io import (
    SHARD_GLOB,
    WriteSortedShards,
    clear_shards,
    read_rows,
    shard_entries,
    write_manifest,
)
from transforms.scoring_models import RatingJudgeHandler, RewardModelHandler

HANDLERS = {LLM_JUDGE: RatingJudgeHandler, REWARD_MODEL: RewardModelHandler}


def out_dir(config: Config, iteration: str) -> str:
    return config.at_root(f"data/judgments/{iteration}")


def report_paths(iteration: str) -> tuple[Path, Path]:
    return Path(f"reports/judges/{iteration}.json"), Path(f"reports/judges/{iteration}.png")


def _handler(name: str, config: Config):
    cfg, policy = getattr(config.judge, name), config.security.load_policy()
    try:
        check_loadable(cfg.model, policy)  # here, with the param named, rather than inside a Beam worker
    except (FileNotFoundError, ValueError) as exc:
        raise type(exc)(f"judge.{name}.model: {exc}") from exc
    return HANDLERS[name](cfg.model, max_input_tokens=cfg.max_input_tokens, micro_batch_size=cfg.micro_batch_size,
                          max_batch_size=cfg.max_batch_size, dtype=cfg.dtype, load_policy=policy)


def graph(config: Config, iteration: str):
    """The Beam graph of this stage, as a function that adds it to a pipeline."""
    cfg = config.judge
    handlers = {name: _handler(name, config) for name in MODEL_JUDGES if name in cfg.enabled()}
    target = out_dir(config, iteration)

    def build(p):
        prompts = beam.pvalue.AsDict(
            p
            | "ReadPrompts" >> beam.io.ReadFromParquet(config.prompts_file("train"))
            | "KeyPrompts" >> beam.Map(lambda r: (r["prompt_id"], r))
        )
        candidates = p | "ReadCandidates" >> beam.io.ReadFromParquet(f"{candidates_dir(config, iteration)}/{SHARD_GLOB}")
        rules = candidates | "VerifierAndHeuristics" >> beam.FlatMap(
            rule_judgments, prompts=prompts, verifier_threshold=cfg.verifier.threshold, heuristics=cfg.heuristics)
        models = [
            candidates | f"Judge_{name}" >> ModelJudge(name, handler, cfg.threshold(name), prompts)
            for name, handler in handlers.items()
        ]
        _ = (
            [rules, *models]
            | "AllJudgments" >> beam.Flatten()
            | "Write" >> WriteSortedShards(target, JUDGMENT, ("candidate_id", "judge"), cfg.num_shards)
        )

    return build


def main(config: Config, iteration: str, beam_args: list[str]) -> dict:
    with guarded("judge", iteration):
        return _judge(config, iteration, beam_args)


def _judge(config: Config, iteration: str, beam_args: list[str]) -> dict:
    cfg = config.judge
    model_judges = [name for name in MODEL_JUDGES if name in cfg.enabled()]
    build = graph(config, iteration)
    target = out_dir(config, iteration)
    clear_shards(target)
    run_pipeline(build, beam_args)
    report = write_calibration(config, iteration, model_judges)
    faults.reached("before_manifest")
    shards = shard_entries(target)
    manifest = {"stage": "judge", "iteration": iteration, "rows": sum(s["rows"] for s in shards), "shards": shards,
                "judges": cfg.enabled() + [h.judge for h in HEURISTICS],
                "judge_models": {name: getattr(cfg, name).model for name in model_judges},
                "calibration": report, "params_hash": params_hash(cfg), "git_revision": git_revision()}
    write_manifest(target, manifest)
    return manifest


def write_calibration(config: Config, iteration: str, model_judges: list[str]) -> dict:
    judgments = read_rows(out_dir(config, iteration))
    report = calibration_report(judgments, {name: config.judge.threshold(name) for name in model_judges})
    json_path, png_path = report_paths(iteration)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"iteration": iteration, "label": "ifeval_verifier passed", "judges": report},
                         indent=2, sort_keys=True) + "\n"
    _replace(json_path, lambda tmp: tmp.write_text(payload))
    _replace(png_path, lambda tmp: plot_calibration(report, f"{iteration}: judge scores vs the verifier", str(tmp)))
    return report


def _replace(path: Path, write) -> None:
    """Writes through a fixed temporary name, so a killed run leaves no half report and no litter."""
    tmp = path.with_name(f".tmp-{path.name}")
    write(tmp)
    faults.reached("mid_write")
    tmp.replace(path)


def calibration_table(report: dict) -> str:
    if not report:
        return "no judge models enabled: nothing to calibrate"
    lines = [f"{'judge':<14}{'n':>6}{'passed':>8}{'ROC AUC':>9}{'acc@thr':>9}"]
    for name, s in sorted(report.items()):
        lines.append(f"{name:<14}{s['candidates']:>6}{s['verifier_passed']:>8}{str(s['roc_auc']):>9}"
                     f"{str(s['accuracy_at_threshold']):>9}")
    return "\n".join(lines)
