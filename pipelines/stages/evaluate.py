"""Stage `evaluate` (Beam): greedy answers to the held-out prompts, scored with the same checkers: each
accuracy with its 95 % interval, the accuracy per instruction type, and the paired difference from the
base model's answers to the same prompts with McNemar's exact test (`vs_base`). The model's health sits
beside its accuracies (transforms/health/metrics.py): length, repetition, diversity and format artifacts,
each with its change from the base model's answers. Eval sets of your own (`evaluate.sets`) are answered
alike and scored by their judge, each under `sets` in the metrics. A check that raises is kept in the
answer's `error` column and counted (`n_errors`); above `evaluate.max_error_share` of a set's prompts the
stage reports no accuracy. Prompts whose length instructions need more than `evaluate.max_new_tokens` are
counted (`n_prompts_over_budget`) and warned about."""

from __future__ import annotations

import json
import logging
from typing import Any

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from pipelines.config import Config, iteration_name
from pipelines.run.guard import guarded
from pipelines.run.runtime import run_pipeline
from pipelines.stage import BASE_ITERATION, Out, Stage, Where
from schemas.records import EVAL_RESULT
from transforms.evaluation.comparison import compare_answers
from transforms.evaluation.metrics import METRIC_PREFIX, accuracies, per_instruction_type, refuse_if_errored, set_metrics
from transforms.evaluation.scoring import Scorer, scorers_for
from transforms.generation.hf_generation import CausalLMHandler, GenerationRequest, SamplingParams
from transforms.health.answer_checks import detected_language, expected_language
from transforms.health.metrics import health
from transforms.io import devices
from transforms.io.layout import BASE, Layout
from transforms.io.model_io import model_sha256
from transforms.io.parquet_io import WriteSortedShards, clear_shards, list_shards, read_rows, write_atomically
from transforms.io.progress import ShowProgress, start_meter
from transforms.judges.ifeval_verifier import parse_kwargs
from transforms.prompts.length_needs import over_budget

log = logging.getLogger("selfsift")


def to_request(prompt: dict):
    messages = tuple((m["role"], m["content"]) for m in prompt["messages"])
    return prompt, GenerationRequest(key=prompt["prompt_id"], messages=messages, seed=0)


def score(answered: tuple, scorers: dict[str, Scorer]) -> dict:
    """The record of an answer (prompt, its generation), scored by its eval set's judge ({eval set: scorer})."""
    prompt, result = answered
    generation = result.inference
    text = generation.text
    return {"prompt_id": prompt["prompt_id"], "split": prompt["split"], "text": text,
            "completion_tokens": generation.completion_tokens, "finish_reason": generation.finish_reason,
            "language": detected_language(text) if text.strip() else "",
            "expected_language": expected_language(prompt["instruction_ids"], parse_kwargs(prompt["kwargs"])),
            "instruction_ids": prompt["instruction_ids"], **scorers[prompt["split"]](prompt, text)}


BASE_EVALUATION = iteration_name(0)


def model_for(config: Config, iteration: int | str) -> tuple[str, str]:
    name = iteration_name(iteration)
    if name == BASE_EVALUATION:
        return name, config.layout.model(BASE)
    config.iteration_name(name)
    return name, config.layout.model(name)


def main(config: Config, iteration: int | str, beam_args: list[str]) -> dict:
    name, model_dir = model_for(config, iteration)
    devices.check_available(config.evaluate.device, "evaluate")  # before the earlier answers are cleared
    with guarded("evaluate", name, config):
        return _evaluate(config, name, model_dir, beam_args)


def graph(config: Config, name: str, model_dir: str):
    """The Beam graph of this stage, as a function that adds it to a pipeline."""
    cfg = config.evaluate
    handler = CausalLMHandler(model_dir, SamplingParams(temperature=0.0, max_new_tokens=cfg.max_new_tokens),
                              micro_batch_size=cfg.micro_batch_size, max_batch_size=cfg.max_batch_size,
                              max_prompt_tokens=config.generate.max_prompt_tokens, dtype=cfg.dtype,
                              load_policy=config.security.load_policy(), device=cfg.device, where="evaluate")
    # Greedy decoding in bfloat16 depends slightly on which prompts share a padded batch, so the
    # prompts enter in a fixed order (the sets are small) rather than as several reads flattened; the
    # built-in sets first, so that adding a set of your own leaves their batches as they were.
    judge_of = cfg.judge_of()
    prompts = sorted((row for eval_set in judge_of for row in read_rows(config.layout.prompts(eval_set))),
                     key=lambda row: (row["split"] not in METRIC_PREFIX, row["split"], row["prompt_id"]))
    scorer_of = scorers_for(config.judge, judge_of)
    label = f"evaluate@{name}"
    start_meter(label, len(prompts), "answers")

    def build(p):
        _ = (
            p
            | "EvalPrompts" >> beam.Create(prompts, reshuffle=False)
            | "ToRequest" >> beam.Map(to_request)
            | "Generate" >> RunInference(KeyedModelHandler(handler))
            | "Progress" >> beam.ParDo(ShowProgress(label, len(prompts), "answers"))
            | "Score" >> beam.Map(score, scorers=scorer_of)
            # prompt ids are unique within a set, not across sets of your own
            | "Write" >> WriteSortedShards(config.layout.evals(name), EVAL_RESULT, ("prompt_id", "split"), 1)
        )

    return build


def base_answers(config: Config, name: str) -> list[dict] | None:
    """The base model's answers, which the health changes are paired against; None for the base itself."""
    if name == BASE_EVALUATION:
        return None
    folder = config.layout.evals(BASE_EVALUATION)
    if not list_shards(folder):
        log.warning("evaluate@%s: no base model answers in %s, so health has no changes against the base "
                    "(run `selfsift evaluate --iteration 0` first)", name, folder)
        return None
    return read_rows(folder)


def _evaluate(config: Config, name: str, model_dir: str, beam_args: list[str]) -> dict:
    folder, path = config.layout.evals(name), Layout.metrics(name)
    build = graph(config, name, model_dir)  # reads every set's prompts: a missing one stops the stage here
    path.unlink(missing_ok=True)  # it scored the answers cleared below; a refused run must not leave it
    clear_shards(folder)
    run_pipeline(build, beam_args)
    rows = read_rows(folder)
    answers = {eval_set: [r for r in rows if r["split"] == eval_set] for eval_set in config.evaluate.eval_sets()}
    scores = {split: accuracies(answers[split]) for split in METRIC_PREFIX}
    own = {eval_set: set_metrics(answers[eval_set], s.judge) for eval_set, s in config.evaluate.sets.items()}
    refuse_if_errored({**scores, **own}, config.evaluate.max_error_share, folder)
    for eval_set, counted in {**scores, **own}.items():
        if counted["n_errors"]:
            log.warning("evaluate@%s: checks raised on %d of %d %s prompts (counted as not followed; their "
                        "`error` column in %s)", name, counted["n_errors"], counted["n_prompts"], eval_set, folder)
    base_rows = base_answers(config, name)
    metrics: dict[str, Any] = {"model": model_dir, "model_sha256": model_sha256(model_dir), "health": {},
               "per_instruction_type": {split: per_instruction_type(answers[split]) for split in METRIC_PREFIX}}
    for split, prefix in METRIC_PREFIX.items():
        for key, value in scores[split].items():
            metrics[prefix + key] = value
        metrics[f"{prefix}n_prompts_over_budget"] = over = len(over_budget(read_rows(config.layout.prompts(split)),
                                                                           config.evaluate.max_new_tokens))
        if over:
            log.warning("evaluate@%s: %d of %d %s prompts ask for more length than evaluate.max_new_tokens (%d) allows "
                        "(transforms/prompts/length_needs.py): their accuracy measures the budget", name, over,
                        scores[split]["n_prompts"], split, config.evaluate.max_new_tokens)
        base = [r for r in base_rows if r["split"] == split] if base_rows else None
        metrics["health"][split] = health(answers[split], config.judge.heuristics, base)
    if base_rows:
        metrics["vs_base"] = compare_answers(base_rows, rows, config.evaluate.eval_sets(),
                                             f"evaluate@{name} against {config.layout.evals(BASE_EVALUATION)}")
    if own:
        metrics["sets"] = own
    path.parent.mkdir(exist_ok=True)
    write_atomically(str(path), (json.dumps(metrics, indent=2, sort_keys=True) + "\n").encode())
    return metrics


def _reads(where: Where) -> list[str]:
    """The model, every eval set and, past the base, the base model's answers (health changes pair against them)."""
    base_answers = [] if where.iteration == BASE_ITERATION else [where.layout.evals(BASE_ITERATION)]
    return [where.model, where.layout.prompts_folder(), *base_answers]


STAGE = Stage(
    "evaluate", "score a model on the held-out prompts (Beam)",
    lambda args, config, beam: main(config, args.iteration, beam),
    params=("evaluate", "judge.custom", "judge.heuristics.repetition_ngram",  # the custom judges, what health counts
            "judge.heuristics.max_repeated_ngram_share", "generate.max_prompt_tokens"),  # repetitive, the prompt limit
    reads=_reads,
    writes=lambda where: [Out(where.layout.evals(where.iteration)),
                          Out(str(Layout.metrics(where.iteration)), "metrics", cache=False)],
    consumes=lambda where: where.summary, produces=lambda where: str(Layout.metrics(where.iteration)),
    each_iteration=True, also_base=True, beam=True)
