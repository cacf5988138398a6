"""Stage `generate` (Beam): K sampled candidates per train prompt from the previous iteration's model.

A prompt's candidates all go to the shard its prompt_id hashes to. With `generate.resumable`, each
shard is its own Beam run and is recorded when complete, so a rerun after a crash regenerates only
the shards that were not finished (see pipelines/resume.py).
"""

from __future__ import annotations

import logging
import sys

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from pipelines.config import Config, iteration_number
from pipelines.resume import ShardProgress, run_shards
from pipelines.run_guard import guarded
from pipelines.runtime import code_fingerprint, git_revision, params_hash, run_pipeline
from schemas.records import CANDIDATE
from transforms.generation import candidates, decoding, fallback_generation, hf_generation, vllm_generation
from transforms.generation.candidates import Lineage, expand_prompt, to_candidate
from transforms.generation.hf_generation import CausalLMHandler, SamplingParams
from transforms.io import devices, faults, parquet_io
from transforms.io.model_io import model_sha256
from transforms.io.parquet_io import (
    WriteSortedShards,
    file_sha256,
    read_table,
    shard_entries,
    shard_index,
    write_manifest,
)
from transforms.io.progress import ShowProgress

log = logging.getLogger("selfsift")


def generation_handler(config: Config, model_dir: str, sampling: SamplingParams):
    cfg = config.generate
    if cfg.backend == "vllm":
        from transforms.generation.vllm_generation import VLLMGenerationHandler

        return VLLMGenerationHandler(model_dir, sampling, max_batch_size=cfg.max_batch_size,
                                     server_kwargs=cfg.vllm_server_kwargs)
    return CausalLMHandler(model_dir, sampling, micro_batch_size=cfg.micro_batch_size,
                           max_batch_size=cfg.max_batch_size, max_prompt_tokens=cfg.max_prompt_tokens,
                           dtype=cfg.dtype, load_policy=config.security.load_policy(), device=cfg.device,
                           where="generate")


def lineage_of(config: Config, iteration: str) -> Lineage:
    cfg, model_dir = config.generate, config.generator_dir(iteration)
    try:
        weights_sha256 = model_sha256(model_dir)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"iterations.{iteration}.generator: {exc}") from exc
    return Lineage(model=model_dir, model_sha256=weights_sha256, iteration=iteration_number(iteration),
                   seed=config.seed, sampling=SamplingParams(cfg.temperature, cfg.top_p, cfg.top_k, cfg.max_new_tokens))


def graph(config: Config, iteration: str, lineage: Lineage, shards: list[int], total: int = 0):
    """The Beam graph generating the given shards, as a function that adds it to a pipeline.
    `total`: the candidates the whole stage run makes, for its progress line."""
    cfg, n, target = config.generate, config.generate.num_shards, config.layout.candidates(iteration)
    handler = generation_handler(config, lineage.model, lineage.sampling)

    def build(p):
        _ = (
            p
            | "ReadPrompts" >> beam.io.ReadFromParquet(config.layout.prompts("train"))
            | "OnlyTheseShards" >> beam.Filter(lambda r: shard_index(r["prompt_id"], n) in shards)
            | "Expand" >> beam.FlatMap(expand_prompt, k=cfg.candidates_per_prompt, lineage=lineage)
            | "Generate" >> RunInference(KeyedModelHandler(handler))
            | "Progress" >> beam.ParDo(ShowProgress(f"generate@{iteration}", total, "candidates"))
            | "ToCandidate" >> beam.MapTuple(lambda meta, result: to_candidate(meta, result.inference, lineage))
            | "Write" >> WriteSortedShards(target, CANDIDATE, ("prompt_id", "candidate_id"), n, only=shards)
        )

    return build


def main(config: Config, iteration: str, beam_args: list[str]) -> dict:
    cfg = config.generate
    prompts_file = config.layout.prompts("train")
    target, n = config.layout.candidates(iteration), cfg.num_shards
    name = f"generate@{iteration}"
    # before a resumed run clears anything; the same seed samples other text on a GPU, so shards made on
    # another kind of device are not reused
    device = devices.resolve(cfg.device, "generate") if cfg.backend == "transformers" else cfg.backend
    with guarded("generate", iteration, config):
        lineage = lineage_of(config, iteration)
        fingerprint = params_hash(cfg, config.seed, lineage.model_sha256, file_sha256(prompts_file), n, device,
                                  code_fingerprint(sys.modules[__name__], candidates, decoding, fallback_generation,
                                                   hf_generation, parquet_io, vllm_generation))
        progress = ShardProgress(name, target, fingerprint)
        prompt_ids = read_table(prompts_file).column("prompt_id").to_pylist()
        run_shards(progress, n, cfg.resumable,
                   lambda shards, total: run_pipeline(graph(config, iteration, lineage, shards, total), beam_args),
                   "candidates", "generation",
                   lambda shards: cfg.candidates_per_prompt * sum(shard_index(p, n) in shards for p in prompt_ids))
        faults.reached("before_manifest")
        shard_list = shard_entries(target)
        manifest = {
            "stage": "generate", "iteration": lineage.iteration, "rows": sum(s["rows"] for s in shard_list),
            "shards": shard_list, "model": lineage.model, "model_sha256": lineage.model_sha256, "device": device,
            "params_hash": params_hash(cfg, config.seed), "git_revision": git_revision(),
        }
        write_manifest(target, manifest)
        progress.clear()
    return manifest
