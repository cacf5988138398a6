"""Stage `curate` (Beam): kept shards and rejected rows, with a manifest whose counts reconcile."""

from __future__ import annotations

from collections import Counter

import apache_beam as beam

from pipelines.config import Config
from pipelines.generate import out_dir as candidates_dir
from pipelines.judge import out_dir as judgments_dir
from pipelines.runtime import git_revision, params_hash, run_pipeline
from schemas.records import REJECTED_ROW, SHARD_ROW
from transforms.curation import REASONS, Curate, Policy
from transforms.model_io import model_sha256
from transforms.parquet_io import (SHARD_GLOB, WriteSortedShards, clear_shards, read_table, shard_entries,
                                   write_manifest)


def shards_dir(iteration: str) -> str:
    return f"data/shards/{iteration}"


def rejected_dir(iteration: str) -> str:
    return f"data/rejected/{iteration}"


def policy_of(config: Config) -> Policy:
    cfg = config.curate
    return Policy(cfg.min_score, cfg.drop_truncated, cfg.max_per_prompt)


def main(config: Config, iteration: str, beam_args: list[str]) -> dict:
    kept_dir, rej_dir = shards_dir(iteration), rejected_dir(iteration)
    clear_shards(kept_dir)
    clear_shards(rej_dir)
    num_shards = config.curate.num_shards

    def build(p):
        candidates = p | "ReadCandidates" >> beam.io.ReadFromParquet(f"{candidates_dir(iteration)}/{SHARD_GLOB}")
        judgments = p | "ReadJudgments" >> beam.io.ReadFromParquet(f"{judgments_dir(iteration)}/{SHARD_GLOB}")
        prompts = p | "ReadPrompts" >> beam.io.ReadFromParquet(f"{config.prompts.out_dir}/train.parquet")
        curated = (candidates, judgments, prompts) | "Curate" >> Curate(policy_of(config))
        _ = curated["kept"] | "WriteKept" >> WriteSortedShards(kept_dir, SHARD_ROW, "candidate_id", num_shards)
        _ = curated["rejected"] | "WriteRejected" >> WriteSortedShards(rej_dir, REJECTED_ROW, "candidate_id", num_shards)

    run_pipeline(build, beam_args)
    rows_in = read_table(candidates_dir(iteration), None).num_rows
    reasons = Counter(read_table(rej_dir, None).column("reason").to_pylist())
    shards = shard_entries(kept_dir)
    rows_out = sum(s["rows"] for s in shards)
    if rows_out + sum(reasons.values()) != rows_in:
        raise RuntimeError(f"curate lost records: {rows_in} candidates in, {rows_out} kept + "
                           f"{sum(reasons.values())} rejected")
    generator = config.generator_dir(iteration)
    manifest = {
        "stage": "curate", "iteration": iteration, "rows_in": rows_in, "rows_out": rows_out,
        "rejected": {reason: reasons.get(reason, 0) for reason in REASONS},
        "policy": policy_of(config).describe(), "shards": shards,
        "rejected_shards": shard_entries(rej_dir),
        "params_hash": params_hash(config.generate, config.judge, config.curate, config.seed),
        "generator_model": generator, "generator_model_sha256": model_sha256(generator),
        "git_revision": git_revision(),
    }
    write_manifest(kept_dir, manifest)
    return manifest


def funnel_table(manifest: dict) -> str:
    lines = [f"{'candidates in':<20}{manifest['rows_in']:>8}"]
    lines += [f"  rejected {reason:<11}{count:>8}" for reason, count in manifest["rejected"].items() if count]
    lines.append(f"{'kept':<20}{manifest['rows_out']:>8}")
    return "\n".join(lines)
