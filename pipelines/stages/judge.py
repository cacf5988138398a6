"""Stage `judge` (Beam): every enabled judge's judgment of every candidate, and the calibration report.

A candidate's judgments all go to the shard its candidate_id hashes to. With `judge.resumable`, each
shard is recorded when complete, so a rerun after a crash judges only the candidates of the shards that
were not finished; on a local runner each shard is its own Beam run (see pipelines/run/resume.py).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pipelines.config import Config, JudgeConfig, calibration_samples
from pipelines.graphs.judging import graph, model_handlers
from pipelines.run.guard import guarded
from pipelines.run.resume import ShardProgress, run_shards
from pipelines.run.runtime import code_fingerprint, git_revision, params_hash, run_pipeline
from pipelines.stage import Out, Stage, iteration_of
from schemas.records import JUDGMENT
from transforms.io import faults, parquet_io
from transforms.io.layout import Layout
from transforms.io.parquet_io import (
    file_sha256,
    read_batches,
    shard_entries,
    shard_index,
    write_manifest,
)
from transforms.io.staging import replace_file
from transforms.judges import contract, endpoint_judge, model_judging, rules, scoring_models
from transforms.judges.calibration import (
    LABEL,
    VERIFIER,
    calibration_report,
    labels_report,
    plot_calibration,
    verifier_labels,
)
from transforms.judges.labeled_scoring import check_verdicts, handler_verdicts
from transforms.judges.labels import LabeledAnswer, read_labels
from transforms.judges.registry import JUDGES, REFERENCE
from transforms.judges.rules import enabled_checks
from transforms.prompts.prompt_reader import PromptFileError

LABELS_KEY = "judge.calibration.labels"


def calibrated_judges(config: Config) -> list[str]:
    """The enabled judge models and custom judges: their scores are calibrated against the reference judge's
    verdicts."""
    cfg = config.judge
    return [spec.name for spec in cfg.specs() if spec.calibrated and cfg.is_enabled(spec.name)]


def model_identity(cfg: JudgeConfig, judge: str) -> dict:
    """What identifies a judge model (its weights, or its server); a judge model's settings are a ModelJudgeConfig."""
    settings = cfg.settings(judge)
    assert isinstance(settings, scoring_models.ModelJudgeConfig), f"judge {judge}: {settings!r} is no ModelJudgeConfig"
    return settings.identity()


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
    return params_hash(cfg, calibration_samples(config), models, file_sha256(layout.prompts("train")),
                       shard_entries(layout.candidates(iteration)), code)


def labeled_answers(config: Config) -> list[LabeledAnswer] | None:
    """The labels file's answers; None when no file is set. A bad file is named with its key and every bad row."""
    path = config.judge.calibration.labels
    if not path:
        return None
    try:
        return read_labels(path)
    except PromptFileError as exc:
        raise PromptFileError(LABELS_KEY, None, str(exc)) from None


def _judge(config: Config, iteration: str, beam_args: list[str]) -> dict:
    cfg = config.judge
    target = config.layout.judgments(iteration)
    answers = labeled_answers(config)  # first: a bad labels file is refused before anything is written
    handlers = model_handlers(config)  # before hashing the judge models: a missing one is named by its key
    models = {spec.name: model_identity(cfg, spec.name) for spec in cfg.enabled_specs("model")}
    progress = ShardProgress(f"judge@{iteration}", target, fingerprint(config, iteration, models))
    candidate_ids = [row["candidate_id"] for row in read_batches(config.layout.candidates(iteration), ["candidate_id"])]
    samples = calibration_samples(config)

    def judgments_in(shards: list[int]) -> int:  # a sampled judge's share of these shards is estimated, for progress
        share = sum(shard_index(c, cfg.num_shards) in shards for c in candidate_ids)
        return (len(cfg.enabled()) - len(samples)) * share + sum(
            round(min(size, len(candidate_ids)) * share / max(len(candidate_ids), 1)) for size in samples.values())

    run_shards(progress, cfg.num_shards, cfg.resumable, beam_args,
               lambda shards, total: run_pipeline(graph(config, iteration, shards, total, handlers), beam_args),
               "judgments", "judging", judgments_in)
    report = write_calibration(config, iteration, answers, handlers)
    faults.reached("before_manifest")
    shards = shard_entries(target)
    manifest = {"stage": "judge", "iteration": iteration, "rows": sum(s["rows"] for s in shards), "shards": shards,
                "judges": cfg.enabled(), "calibration_samples": samples,
                "judge_models": models,
                "calibration": report, "params_hash": params_hash(cfg), "git_revision": git_revision()}
    write_manifest(target, manifest)
    progress.clear()
    return manifest


def write_calibration(config: Config, iteration: str, answers: list[LabeledAnswer] | None, handlers: dict) -> dict:
    """The calibration report (reports/judges/<iteration>.json, and its figure): every calibrated judge against
    the verifier's labels of the candidates and, with a labels file (`answers`; `handlers`: the judge models'),
    against its labels."""
    judges = {name: config.judge.threshold(name) for name in calibrated_judges(config)}
    calibrated = {REFERENCE, *judges}  # not the heuristics' judgments
    judgments = [j for j in read_batches(config.layout.judgments(iteration), list(JUDGMENT.names))
                 if j["judge"] in calibrated]
    payload: dict[str, Any]
    payload = {"iteration": iteration, "label": f"{REFERENCE} passed", "verifier_labels": len(verifier_labels(judgments)),
               "judges": calibration_report(judgments, judges, calibration_samples(config))}
    if answers is not None:
        payload["labels"] = labels_section(config, answers, handlers, judges)
    json_path, png_path = config.layout.calibration(iteration)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    replace_file(json_path, lambda tmp: tmp.write_text(text))
    labeled = payload["labels"]["judges"] if answers is not None else None
    title = f"{iteration}: judge scores vs the verifier" + (" (top) and the labels file (bottom)" if labeled else "")
    replace_file(png_path, lambda tmp: plot_calibration(payload["judges"], title, str(tmp), labeled=labeled))
    return payload


def labels_section(config: Config, answers: list[LabeledAnswer], handlers: dict, judges: dict) -> dict:
    """Each calibrated judge's agreement with the labels file: custom judges by their checks, judge models by
    their handlers (`judges`: name -> threshold)."""
    path = config.judge.calibration.labels
    checks = enabled_checks(config.judge)
    verdicts = {name: handler_verdicts(handlers[name], answers) if name in handlers else
                check_verdicts(checks[name], answers) for name in judges}
    labels = [answer.label for answer in answers]
    return {"file": path, "sha256": file_sha256(path), "rows": len(answers), f"{LABEL}_passed": sum(labels),
            "judges": labels_report(labels, verdicts, judges)}


def calibration_table(calibration: dict) -> str:
    """What `selfsift judge` prints: each calibrated judge against the verifier and, when set, the labels file."""
    if not calibration["judges"]:
        return "no judge models enabled: nothing to calibrate"
    tables = [_table(calibration["judges"], VERIFIER,
                     f"against the verifier ({calibration['verifier_labels']} candidates it could label)")]
    labels = calibration.get("labels")
    if labels:
        tables.append(_table(labels["judges"], LABEL, f"against {labels['file']} ({labels['rows']} rows, "
                                                      f"{labels[f'{LABEL}_passed']} labeled true)"))
    return "\n\n".join(tables)


def _table(report: dict, source: str, heading: str) -> str:
    width = max(len("judge"), *(len(name) + len(" (sample)") for name in report)) + 2
    lines = [heading, f"{'judge':<{width}}{'n':>6}{'positives':>10}{'ROC AUC':>9}{'95% CI':>18}{'acc@thr':>9}"]
    for name, s in sorted(report.items()):
        interval = s["roc_auc_ci95"]
        interval_text = f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "-"
        shown = f"{name} (sample)" if "sample" in s else name
        lines.append(f"{shown:<{width}}{s['candidates']:>6}{s[f'{source}_passed']:>10}{str(s['roc_auc']):>9}"
                     f"{interval_text:>18}{str(s['accuracy_at_threshold']):>9}")
    return "\n".join(lines)


def _run(args, config, beam):
    manifest = main(config, iteration_of(args, config), beam)
    print(calibration_table(manifest["calibration"]))
    return {k: manifest[k] for k in ("rows", "judges")}


STAGE = Stage(
    "judge", "judge candidates (Beam)", _run,
    # judge models are known by their params, not as deps; a judge of weight 0 scores a calibration sample only
    params=("judge", "curate.weights", "seed"),  # seed: the calibration sample
    reads=lambda where: [where.layout.prompts("train"), where.layout.candidates(where.iteration)],
    writes=lambda where: [Out(where.layout.judgments(where.iteration), persist=True),
                          *(Out(str(path), cache=False) for path in Layout.calibration(where.iteration))],
    consumes=lambda where: where.layout.manifest(where.layout.candidates(where.iteration)),
    produces=lambda where: where.layout.manifest(where.layout.judgments(where.iteration)),
    each_iteration=True, beam=True)
