"""Held-out accuracy of the fine-tuning speed settings: one iteration's model trained the stage's full
schedule with today's path (padded batches, benchmarks/finetune.py's baseline) and with the stage's
defaults, each answering the eval split greedily as the evaluate stage does (`evaluate.*` defaults),
scored by the IFEval verifier. Reports each model's prompt-level strict accuracy with its 95 % Wilson
interval, the paired difference on the same prompts with its interval, and each run's training loss
and tokens/s. Run: python -m benchmarks.finetune_heldout
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import tempfile

from benchmarks.finetune import BASELINE, CHOSEN, SETTINGS, stage_defaults, train
from pipelines.config import EvaluateConfig, FinetuneConfig
from pipelines.stages.evaluate import score, to_request
from schemas.records import SHARD_ROW
from transforms.evaluation.metrics import accuracies
from transforms.evaluation.scoring import scorers_for
from transforms.generation.hf_generation import CausalLMHandler, SamplingParams
from transforms.health.intervals import Z95, wilson
from transforms.io.parquet_io import read_rows
from transforms.judges.config import JudgeConfig
from transforms.judges.registry import REFERENCE

SPLIT = "eval"


def followed(model_dir: str, prompts: list[dict]) -> list[bool]:
    """Per prompt, whether the model's greedy answer follows every instruction (strict)."""
    cfg = EvaluateConfig()
    handler = CausalLMHandler(model_dir, SamplingParams(temperature=0.0, max_new_tokens=cfg.max_new_tokens),
                              micro_batch_size=cfg.micro_batch_size, max_batch_size=cfg.max_batch_size, dtype=cfg.dtype)
    model = handler.load_model()
    results = handler.run_inference([to_request(p)[1] for p in prompts], model)
    scorers = scorers_for(JudgeConfig(), {SPLIT: REFERENCE})
    scored = [score((p, r), scorers) for p, r in zip(prompts, results, strict=True)]
    assert accuracies(scored)["n_errors"] == 0, "a check raised; see the scored answers"
    return [bool(s["strict"]) and all(s["strict"]) for s in scored]


def paired_difference(a: list[bool], b: list[bool]) -> tuple[float, float, float]:
    """(b's accuracy minus a's, and its 95 % interval) on the same prompts (normal approximation of the
    mean of per-prompt differences)."""
    diffs = [int(y) - int(x) for x, y in zip(a, b, strict=True)]
    n, mean = len(diffs), sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / max(n - 1, 1))
    half = Z95 * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def main(argv=None) -> dict:
    from benchmarks.common import print_table, write_result

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shards", default="data/shards/iter-001")
    parser.add_argument("--prompts", default=f"data/prompts/{SPLIT}.parquet")
    args = parser.parse_args(argv)
    rows, prompts = read_rows(args.shards, SHARD_ROW), read_rows(args.prompts)
    load_before = os.getloadavg()
    runs, answers = {}, {}
    for name, values in {BASELINE: SETTINGS[BASELINE], CHOSEN: stage_defaults()}.items():
        with tempfile.TemporaryDirectory() as model_dir:
            runs[name] = {"settings": values, **train(rows, dataclasses.replace(FinetuneConfig(), **values), None,
                                                      save_to=model_dir)}
            answers[name] = followed(model_dir, prompts)
        passed = sum(answers[name])
        low, high = wilson(passed, len(prompts))
        runs[name].update({"prompt_level_strict_acc": passed / len(prompts), "acc_low": low, "acc_high": high})
    difference, low, high = paired_difference(answers[BASELINE], answers[CHOSEN])
    print_table(f"Held-out ({args.prompts}, {len(prompts)} prompts, greedy) after training on {args.shards}",
                ["training", "loss", "tokens/s", "prompt-level strict accuracy", "95 % interval"],
                [[name, f"{r['training_loss']:.4f}", r["tokens_per_second"], f"{r['prompt_level_strict_acc']:.3f}",
                  f"{r['acc_low']:.3f}-{r['acc_high']:.3f}"] for name, r in runs.items()])
    print(f"  difference (defaults - baseline): {difference:+.3f}, 95 % interval {low:+.3f} to {high:+.3f}")
    result = {"shards": args.shards, "prompts": args.prompts, "n_prompts": len(prompts), "runs": runs,
              "difference": difference, "difference_low": low, "difference_high": high,
              "load_average_before": load_before, "load_average_after": os.getloadavg()}
    write_result("finetune_heldout", result)
    return result


if __name__ == "__main__":
    main()
