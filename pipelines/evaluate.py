"""Stage `evaluate` (Beam): greedy answers to the held-out prompts, scored with the same checkers."""

from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from pipelines.config import Config, iteration_name
from pipelines.run_guard import guarded
from pipelines.runtime import run_pipeline
from schemas.records import EVAL_RESULT
from transforms.generation.hf_generation import CausalLMHandler, GenerationRequest, SamplingParams
from transforms.io.layout import BASE, Layout
from transforms.io.model_io import model_sha256
from transforms.io.parquet_io import WriteSortedShards, clear_shards, read_rows, write_atomically
from transforms.judges.eval_metrics import METRIC_PREFIX, accuracies
from transforms.judges.ifeval_verifier import verify


def to_request(prompt: dict):
    messages = tuple((m["role"], m["content"]) for m in prompt["messages"])
    return prompt, GenerationRequest(key=prompt["prompt_id"], messages=messages, seed=0)


def score(prompt: dict, result) -> dict:
    text = result.inference.text
    verdict = verify(text, prompt["instruction_ids"], prompt["kwargs"], prompt["messages"][-1]["content"])
    return {"prompt_id": prompt["prompt_id"], "split": prompt["split"], "text": text,
            "instruction_ids": prompt["instruction_ids"], "strict": list(verdict.strict), "loose": list(verdict.loose)}


def model_for(config: Config, iteration: int | str) -> tuple[str, str]:
    name = iteration_name(iteration)
    if name == iteration_name(0):
        return name, config.layout.model(BASE)
    config.iteration_name(name)
    return name, config.layout.model(name)


def main(config: Config, iteration: int | str, beam_args: list[str]) -> dict:
    name, model_dir = model_for(config, iteration)
    with guarded("evaluate", name):
        return _evaluate(config, name, model_dir, beam_args)


def graph(config: Config, name: str, model_dir: str):
    """The Beam graph of this stage, as a function that adds it to a pipeline."""
    cfg = config.evaluate
    handler = CausalLMHandler(model_dir, SamplingParams(temperature=0.0, max_new_tokens=cfg.max_new_tokens),
                              micro_batch_size=cfg.micro_batch_size, max_batch_size=cfg.max_batch_size,
                              max_prompt_tokens=config.generate.max_prompt_tokens, dtype=cfg.dtype,
                              load_policy=config.security.load_policy())
    # Greedy decoding in bfloat16 depends slightly on which prompts share a padded batch, so the
    # prompts enter in a fixed order (the sets are small) rather than as two reads flattened.
    prompts = sorted((row for split in METRIC_PREFIX for row in read_rows(config.layout.prompts(split))),
                     key=lambda row: (row["split"], row["prompt_id"]))

    def build(p):
        _ = (
            p
            | "EvalPrompts" >> beam.Create(prompts, reshuffle=False)
            | "ToRequest" >> beam.Map(to_request)
            | "Generate" >> RunInference(KeyedModelHandler(handler))
            | "Score" >> beam.MapTuple(score)
            | "Write" >> WriteSortedShards(config.layout.evals(name), EVAL_RESULT, "prompt_id", 1)
        )

    return build


def _evaluate(config: Config, name: str, model_dir: str, beam_args: list[str]) -> dict:
    clear_shards(config.layout.evals(name))
    run_pipeline(graph(config, name, model_dir), beam_args)
    rows = read_rows(config.layout.evals(name))
    metrics = {"model": model_dir, "model_sha256": model_sha256(model_dir)}
    for split, prefix in METRIC_PREFIX.items():
        for key, value in accuracies([r for r in rows if r["split"] == split]).items():
            metrics[prefix + key] = value
    path = Layout.metrics(name)
    path.parent.mkdir(exist_ok=True)
    write_atomically(str(path), (json.dumps(metrics, indent=2, sort_keys=True) + "\n").encode())
    return metrics
