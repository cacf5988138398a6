"""Stage `judge` (Beam): the verifier's judgment of every candidate."""

from __future__ import annotations

import apache_beam as beam

from pipelines.config import Config
from pipelines.generate import out_dir as candidates_dir
from pipelines.runtime import git_revision, params_hash, run_pipeline
from schemas.records import JUDGMENT
from transforms.judging import judge_candidate
from transforms.parquet_io import SHARD_GLOB, WriteSortedShards, clear_shards, shard_entries, write_manifest


def out_dir(iteration: str) -> str:
    return f"data/judgments/{iteration}"


def main(config: Config, iteration: str, beam_args: list[str]) -> dict:
    target = out_dir(iteration)
    clear_shards(target)

    def build(p):
        prompts = (
            p
            | "ReadPrompts" >> beam.io.ReadFromParquet(f"{config.prompts.out_dir}/train.parquet")
            | "KeyPrompts" >> beam.Map(lambda r: (r["prompt_id"], r))
        )
        _ = (
            p
            | "ReadCandidates" >> beam.io.ReadFromParquet(f"{candidates_dir(iteration)}/{SHARD_GLOB}")
            | "Verify" >> beam.Map(judge_candidate, prompts=beam.pvalue.AsDict(prompts))
            | "Write" >> WriteSortedShards(target, JUDGMENT, "candidate_id", config.judge.num_shards)
        )

    run_pipeline(build, beam_args)
    shards = shard_entries(target)
    manifest = {"stage": "judge", "rows": sum(s["rows"] for s in shards), "shards": shards,
                "judges": ["ifeval_verifier"], "params_hash": params_hash(config.judge), "git_revision": git_revision()}
    write_manifest(target, manifest)
    return manifest
