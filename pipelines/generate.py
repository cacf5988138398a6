"""Stage `generate` (Beam): K sampled candidates per train prompt from the previous iteration's model."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from pipelines.config import Config, iteration_number
from pipelines.runtime import git_revision, params_hash, run_pipeline
from schemas.records import CANDIDATE
from transforms.candidates import Lineage, expand_prompt, to_candidate
from transforms.hf_generation import CausalLMHandler, SamplingParams
from transforms.model_io import model_sha256
from transforms.parquet_io import WriteSortedShards, clear_shards, shard_entries, write_manifest


def out_dir(iteration: str) -> str:
    return f"data/candidates/{iteration}"


def main(config: Config, iteration: str, beam_args: list[str]) -> dict:
    cfg = config.generate
    model_dir = config.generator_dir(iteration)
    sampling = SamplingParams(cfg.temperature, cfg.top_p, cfg.top_k, cfg.max_new_tokens)
    lineage = Lineage(model=model_dir, model_sha256=model_sha256(model_dir), iteration=iteration_number(iteration),
                      seed=config.seed, sampling=sampling)
    handler = CausalLMHandler(model_dir, sampling, micro_batch_size=cfg.micro_batch_size,
                              max_batch_size=cfg.max_batch_size, max_prompt_tokens=cfg.max_prompt_tokens,
                              dtype=cfg.dtype)
    target = out_dir(iteration)
    clear_shards(target)

    def build(p):
        _ = (
            p
            | "ReadPrompts" >> beam.io.ReadFromParquet(f"{config.prompts.out_dir}/train.parquet")
            | "Expand" >> beam.FlatMap(expand_prompt, k=cfg.candidates_per_prompt, lineage=lineage)
            | "Generate" >> RunInference(KeyedModelHandler(handler))
            | "ToCandidate" >> beam.MapTuple(lambda meta, result: to_candidate(meta, result.inference, lineage))
            | "Write" >> WriteSortedShards(target, CANDIDATE, "candidate_id", cfg.num_shards)
        )

    run_pipeline(build, beam_args)
    shards = shard_entries(target)
    manifest = {
        "stage": "generate", "iteration": lineage.iteration, "rows": sum(s["rows"] for s in shards),
        "shards": shards, "model": model_dir, "model_sha256": lineage.model_sha256,
        "params_hash": params_hash(cfg, config.seed), "git_revision": git_revision(),
    }
    write_manifest(target, manifest)
    return manifest
