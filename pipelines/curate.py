"""Stage `curate` (Beam): kept shards, rejected rows and preference pairs, with a manifest whose
funnel accounts for every candidate."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import apache_beam as beam

from pipelines.config import Config
from pipelines.generate import out_dir as candidates_dir
from pipelines.judge import out_dir as judgments_dir
from pipelines.judge import report_paths as calibration_paths
from pipelines.run_guard import guarded
from pipelines.runtime import git_revision, params_hash, run_pipeline
from schemas.records import PAIR, REJECTED_ROW, SHARD_ROW
from transforms import faults
from transforms.calibration import judges_below_floor
from transforms.curation import Curate, CurationPlan, Decontamination, JudgePolicy
from transforms.decontamination import build_index, eval_file_texts
from transforms.judge_names import MODEL_JUDGES
from transforms.judging import prompt_text
from transforms.model_io import model_sha256
from transforms.near_dedup import MinHashParams
from transforms.parquet_io import (
    SHARD_GLOB,
    WriteSortedShards,
    clear_shards,
    read_rows,
    read_table,
    shard_entries,
    write_manifest,
)
from transforms.rejections import REASONS, funnel
from transforms.selection import SelectionPolicy
from transforms.semantic_dedup import SemanticDedupParams


class JudgeRefused(RuntimeError):
    pass


def shards_dir(config: Config, iteration: str) -> str:
    return config.at_root(f"data/shards/{iteration}")


def rejected_dir(config: Config, iteration: str) -> str:
    return config.at_root(f"data/rejected/{iteration}")


def pairs_dir(config: Config, iteration: str) -> str:
    return config.at_root(f"data/pairs/{iteration}")


def judge_policy(config: Config) -> JudgePolicy:
    cfg = config.curate
    return JudgePolicy(cfg.combine, {n: w for n, w in cfg.weights.items() if w > 0}, cfg.min_score)


def check_judges(config: Config, iteration: str) -> None:
    """Refuses, before anything is written, a gating judge model that disagrees with the verifier."""
    cfg = config.curate
    path = calibration_paths(iteration)[0]
    gating_models = [n for n in cfg.gating_judges() if n in MODEL_JUDGES and n not in cfg.allow_low_auc_judges]
    if not gating_models:
        return
    if not path.is_file():
        raise JudgeRefused(f"{path}: calibration report not found; run `selfsift judge --iteration {iteration}`")
    problems = judges_below_floor(json.loads(path.read_text())["judges"], gating_models, cfg.judge_auc_floor)
    if problems:
        raise JudgeRefused(
            f"curate refuses to select with judges that do not agree with the verifier ({path}):\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\nSet their curate.weights to 0, lower curate.judge_auc_floor, or list them under "
              "curate.allow_low_auc_judges to use them anyway.")


def decontamination_of(config: Config) -> Decontamination | None:
    cfg = config.curate.decontamination
    if not cfg.enabled:
        return None
    sources = [(f"{name}:{row['prompt_id']}", prompt_text(row))
               for name in ("eval", "eval_ood") for row in read_rows(config.prompts_file(name))]
    for path in cfg.extra_eval_files:
        sources += eval_file_texts(path)
    train = [prompt_text(row) for row in read_rows(config.prompts_file("train"))]
    return Decontamination(build_index(sources, cfg.ngram, shared_with_training=train), cfg.ngram)


def plan_of(config: Config, iteration: str) -> CurationPlan:
    cfg = config.curate
    near, sem = cfg.near_dedup, cfg.semantic_dedup
    if sem.enabled and not Path(sem.model, "config.json").is_file():
        raise FileNotFoundError(f"curate.semantic_dedup.model: no model at {sem.model} (run `make embedder`)")
    dedup = cfg.control != "no_filter"
    return CurationPlan(
        judges=judge_policy(config),
        selection=SelectionPolicy(cfg.max_per_prompt, cfg.max_per_instruction_type, cfg.top_fraction),
        near_dedup=MinHashParams(near.ngram, near.num_perm, near.bands, near.threshold)
        if near.enabled and dedup else None,
        semantic_dedup=SemanticDedupParams(sem.model, sem.threshold, sem.scope, sem.batch_size,
                                           load_policy=config.security.load_policy())
        if sem.enabled and dedup else None,
        decontamination=decontamination_of(config),
        pairs_min_margin=cfg.pairs.min_margin if cfg.pairs.enabled else None,
        control=cfg.control,
        control_rows=cfg.control_rows.get(iteration, 0),
        control_seed=config.seed,
    )


def graph(config: Config, iteration: str, plan: CurationPlan):
    """The Beam graph of this stage, as a function that adds it to a pipeline."""
    kept_dir, rej_dir, pair_dir = shards_dir(config, iteration), rejected_dir(config, iteration), pairs_dir(config, iteration)
    num_shards = config.curate.num_shards

    def build(p):
        candidates = p | "ReadCandidates" >> beam.io.ReadFromParquet(f"{candidates_dir(config, iteration)}/{SHARD_GLOB}")
        judgments = p | "ReadJudgments" >> beam.io.ReadFromParquet(f"{judgments_dir(config, iteration)}/{SHARD_GLOB}")
        prompts = p | "ReadPrompts" >> beam.io.ReadFromParquet(config.prompts_file("train"))
        curated = (candidates, judgments, prompts) | "Curate" >> Curate(plan)
        _ = curated["kept"] | "WriteKept" >> WriteSortedShards(kept_dir, SHARD_ROW, "candidate_id", num_shards)
        _ = curated["rejected"] | "WriteRejected" >> WriteSortedShards(rej_dir, REJECTED_ROW, "candidate_id", num_shards)
        if "pairs" in curated:
            _ = curated["pairs"] | "WritePairs" >> WriteSortedShards(pair_dir, PAIR, "pair_id", num_shards)

    return build


def main(config: Config, iteration: str, beam_args: list[str]) -> dict:
    with guarded("curate", iteration):
        return _curate(config, iteration, beam_args)


def _curate(config: Config, iteration: str, beam_args: list[str]) -> dict:
    check_judges(config, iteration)
    plan = plan_of(config, iteration)
    kept_dir, rej_dir, pair_dir = shards_dir(config, iteration), rejected_dir(config, iteration), pairs_dir(config, iteration)
    for directory in (kept_dir, rej_dir, pair_dir):
        clear_shards(directory)
    run_pipeline(graph(config, iteration, plan), beam_args)
    manifest = build_manifest(config, iteration, plan)
    faults.reached("before_manifest")
    write_manifest(kept_dir, manifest)
    return manifest


def build_manifest(config: Config, iteration: str, plan: CurationPlan) -> dict:
    kept_dir, rej_dir, pair_dir = shards_dir(config, iteration), rejected_dir(config, iteration), pairs_dir(config, iteration)
    rows_in = read_table(candidates_dir(config, iteration), None).num_rows
    reasons = Counter(read_table(rej_dir, None).column("reason").to_pylist())
    unknown = sorted(set(reasons) - set(REASONS))
    if unknown:
        raise RuntimeError(f"curate wrote rejection reasons outside the funnel: {unknown}")
    kept = read_table(kept_dir, None)
    if kept.num_rows + sum(reasons.values()) != rows_in:
        raise RuntimeError(f"curate lost records: {rows_in} candidates in, {kept.num_rows} kept + "
                           f"{sum(reasons.values())} rejected")
    kept_per_type = Counter(t for ids in kept.column("instruction_ids").to_pylist() for t in ids)
    pair_shards = shard_entries(pair_dir)
    generator = config.generator_dir(iteration)
    return {
        "stage": "curate", "iteration": iteration, "rows_in": rows_in, "rows_out": kept.num_rows,
        "rejected": {reason: reasons.get(reason, 0) for reason in REASONS},
        "funnel": funnel(rows_in, reasons),
        "kept_per_instruction_type": dict(sorted(kept_per_type.items())),
        "policy": plan.keep_reason(),
        "shards": shard_entries(kept_dir), "rejected_shards": shard_entries(rej_dir),
        "pairs": sum(s["rows"] for s in pair_shards), "pair_shards": pair_shards,
        "params_hash": params_hash(config.generate, config.judge, config.curate, config.seed),
        "generator_model": generator, "generator_model_sha256": model_sha256(generator),
        "git_revision": git_revision(),
    }


def funnel_table(manifest: dict) -> str:
    lines = [f"{'step':<18}{'in':>7}{'rejected':>10}{'out':>7}   reasons"]
    for step in manifest["funnel"]:
        dropped = {r: n for r, n in step["rejected"].items() if n}
        lines.append(f"{step['step']:<18}{step['in']:>7}{sum(dropped.values()):>10}{step['out']:>7}   "
                     + ", ".join(f"{r} {n}" for r, n in dropped.items()))
    lines.append(f"kept {manifest['rows_out']} of {manifest['rows_in']}; {manifest['pairs']} preference pairs")
    return "\n".join(lines)
