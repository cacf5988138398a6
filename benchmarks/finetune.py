"""Fine-tuning step time: TRL's default (gradient checkpointing on) against the stage's default (off).

Trains the base model on the kept rows of an iteration (`data/shards/iter-001`, from `dvc repro`)
for a few steps each way, alternating, and checks both runs reach the same loss (checkpointing
recomputes activations; it does not change the arithmetic). Run: python -m benchmarks.finetune
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile

from benchmarks.common import BASE_MODEL, print_table, stopwatch, write_result
from pipelines.config import FinetuneConfig
from pipelines.finetune import build_trainer
from schemas.records import SHARD_ROW
from transforms.io.model_io import load_causal_lm
from transforms.io.parquet_io import read_rows


def seconds_per_step(rows: list[dict], cfg: FinetuneConfig, steps: int) -> tuple[float, float]:
    """(seconds per optimizer step after the first, training loss)."""
    model, tokenizer = load_causal_lm(BASE_MODEL)
    with tempfile.TemporaryDirectory() as workdir:
        trainer, _ = build_trainer(model, tokenizer, rows, cfg, seed=0, workdir=workdir)
        trainer.args.max_steps = 1
        trainer.train()  # warm-up step (allocations, first-call overheads)
        trainer.args.max_steps = steps + 1
        with stopwatch() as timing:
            result = trainer.train(resume_from_checkpoint=None)
    return timing["seconds"] / (steps + 1), result.training_loss


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shards", default="data/shards/iter-001")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    rows = read_rows(args.shards, SHARD_ROW)
    if not rows:
        raise SystemExit(f"{args.shards}: no kept rows; run `dvc repro curate@iter-001` first")
    base = FinetuneConfig()
    settings = {"gradient checkpointing on (TRL's default)": dataclasses.replace(base, gradient_checkpointing=True),
                "off (selfsift's default)": dataclasses.replace(base, gradient_checkpointing=False)}
    times: dict[str, list[float]] = {name: [] for name in settings}
    losses: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, cfg in settings.items():
            step_time, losses[name] = seconds_per_step(rows, cfg, args.steps)
            times[name].append(step_time)
    best = {name: min(t) for name, t in times.items()}
    on, off = best.values()
    print_table(f"Fine-tuning, batch {base.batch_size}, {len(rows)} rows, {args.steps} steps x {args.repeats} "
                f"(best of repeats)", ["setting", "s/step", "speed-up"],
                [[name, t, on / t] for name, t in best.items()])
    print(f"  training loss: {', '.join(f'{n}: {v:.4f}' for n, v in losses.items())}")
    result = {"rows": len(rows), "steps": args.steps, "repeats": args.repeats, "seconds_per_step": times,
              "speedup": on / off, "training_loss": losses}
    write_result("finetune", result)
    return result


if __name__ == "__main__":
    main()
