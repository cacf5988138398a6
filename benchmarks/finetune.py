"""Fine-tuning throughput: today's path (TRL's SFTTrainer, padded batches, bfloat16 autocast, which TRL
turns on by default) against each speed setting alone (`finetune.padding_free`, `finetune.group_by_length`,
and float32 without autocast, `bf16: false`), and the stage's default combination.

Each setting trains the base model on the kept rows of an iteration (`data/shards/iter-001`, from
`dvc repro`) from the same seed: one warm-up step, then `--steps` timed optimizer steps. Reports train
tokens/s (every token of the rows, and the supervised answer tokens, padding never counted), s/step,
the mean training loss of the timed steps, and the speed-up in tokens/s over the baseline. The held-out
accuracy of the chosen combination is benchmarks/finetune_heldout.py. Run: python -m benchmarks.finetune
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile

from benchmarks.common import BASE_MODEL, print_table, stopwatch, write_result
from pipelines.config import FinetuneConfig
from pipelines.stages.finetune import build_trainer
from schemas.records import SHARD_ROW
from transforms.io.model_io import load_causal_lm
from transforms.io.parquet_io import read_rows
from transforms.training.sft_data import IGNORED

BASELINE = "padded, bf16 autocast (today's path)"
# Each change alone against the baseline, then the stage's defaults (params.yaml), which combine the winners.
SETTINGS = {
    BASELINE: {"padding_free": False, "bf16": True, "group_by_length": False},
    "float32, no autocast": {"padding_free": False, "bf16": False, "group_by_length": False},
    "padding-free": {"padding_free": True, "bf16": True, "group_by_length": False},
    "group_by_length": {"padding_free": False, "bf16": True, "group_by_length": True},
}
CHOSEN = "the stage's defaults"


def stage_defaults() -> dict:
    cfg = FinetuneConfig()
    return {name: getattr(cfg, name) for name in SETTINGS[BASELINE]}


class TokenCounter:
    """Wraps a trainer's `training_step` and counts the tokens of the batches it trains on (padding excluded;
    counting where batches are collated would also count the batch the data loader reads ahead)."""

    def __init__(self, training_step):
        self.training_step, self.tokens, self.supervised = training_step, 0, 0

    def __call__(self, model, inputs, *args, **kwargs):
        mask = inputs.get("attention_mask")
        self.tokens += int(mask.sum()) if mask is not None else inputs["input_ids"].numel()  # padding-free: no padding
        self.supervised += int((inputs["labels"] != IGNORED).sum())
        return self.training_step(model, inputs, *args, **kwargs)


def train(rows: list[dict], cfg: FinetuneConfig, steps: int | None, warmup_steps: int = 0, save_to: str | None = None):
    """Trains the base model on `rows` (`steps` optimizer steps, or the whole schedule when None) after
    `warmup_steps` untimed ones; returns the timed run's figures, and saves the model when `save_to`."""
    model, tokenizer = load_causal_lm(BASE_MODEL)
    with tempfile.TemporaryDirectory() as workdir:
        trainer, _ = build_trainer(model, tokenizer, rows, cfg, seed=0, workdir=workdir)
        if warmup_steps:
            trainer.args.max_steps = warmup_steps
            trainer.train()  # allocations, first-call overheads
        trainer.args.max_steps = steps or -1
        counter = trainer.training_step = TokenCounter(trainer.training_step)
        with stopwatch() as timing:
            result = trainer.train()
    if save_to:
        tokenizer.padding_side = "left"
        trainer.model.save_pretrained(save_to)
        tokenizer.save_pretrained(save_to)
    seconds = timing["seconds"]
    return {"steps": result.global_step, "seconds": seconds, "seconds_per_step": seconds / result.global_step,
            "tokens": counter.tokens, "supervised_tokens": counter.supervised,
            "tokens_per_second": counter.tokens / seconds, "supervised_tokens_per_second": counter.supervised / seconds,
            "training_loss": result.training_loss}


def training_profile(rows: list[dict], cfg: FinetuneConfig, steps: int = 2, top: int = 15) -> list[dict]:
    """Top operators of `steps` optimizer steps with `cfg` (after one warm-up step), by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    model, tokenizer = load_causal_lm(BASE_MODEL)
    with tempfile.TemporaryDirectory() as workdir:
        trainer, _ = build_trainer(model, tokenizer, rows, cfg, seed=0, workdir=workdir)
        trainer.args.max_steps = 1
        trainer.train()
        trainer.args.max_steps = steps
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            trainer.train()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"op": e.key, "self_seconds": e.self_cpu_time_total / 1e6, "share": e.self_cpu_time_total / total,
             "calls": e.count} for e in events[:top]]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shards", default="data/shards/iter-001")
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps per setting")
    args = parser.parse_args(argv)
    rows = read_rows(args.shards, SHARD_ROW)
    if not rows:
        raise SystemExit(f"{args.shards}: no kept rows; run `dvc repro curate@iter-001` first")
    base = FinetuneConfig()
    settings = {**SETTINGS, CHOSEN: stage_defaults()}
    load_before = os.getloadavg()
    runs = {}
    for name, values in settings.items():
        same = next((other for other, run in runs.items() if run["settings"] == values), None)
        if same:  # the defaults are one of the single changes: measured once
            runs[name] = {**runs[same], "same_run_as": same}
            continue
        runs[name] = {"settings": values, **train(rows, dataclasses.replace(base, **values), args.steps, warmup_steps=1)}
        runs[name]["speedup"] = runs[name]["tokens_per_second"] / runs[BASELINE]["tokens_per_second"]
    print_table(f"Fine-tuning SmolLM2-135M, batch {base.batch_size}, {len(rows)} rows, {args.steps} timed steps each",
                ["setting", "tokens/s", "supervised tokens/s", "s/step", "loss", "speed-up"],
                [[name, r["tokens_per_second"], r["supervised_tokens_per_second"], r["seconds_per_step"],
                  f"{r['training_loss']:.4f}", f"{r['speedup']:.2f}x"] for name, r in runs.items()])
    result = {"shards": args.shards, "rows": len(rows), "batch_size": base.batch_size, "steps": args.steps,
              "baseline": BASELINE, "chosen": CHOSEN, "runs": runs,
              "load_average_before": load_before, "load_average_after": os.getloadavg()}
    result["profile"] = training_profile(rows, dataclasses.replace(base, **stage_defaults()))
    print_table("Where a training step goes (the stage's defaults; torch profiler, self CPU time)",
                ["op", "seconds", "share", "calls"],
                [[p["op"], p["self_seconds"], f"{p['share']:.0%}", p["calls"]] for p in result["profile"]])
    write_result("finetune", result)
    return result


if __name__ == "__main__":
    main()
