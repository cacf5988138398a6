"""Stage `finetune` (not Beam): supervised fine-tuning of the generator on the curated shards.

Continued training: iteration N starts from the model that generated its data (iteration N-1's),
and trains on this iteration's shards (`finetune.data: iteration`) or on every iteration's so far
(`all`). The chat template is applied by TRL; the loss covers the response tokens only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from pipelines.config import Config, FinetuneConfig
from pipelines.curate import shards_dir
from pipelines.run_guard import guarded
from schemas.records import SHARD_ROW
from transforms.model_io import load_causal_lm, model_sha256, save_atomically
from transforms.parquet_io import read_rows
from transforms.sft_data import to_prompt_completion


def training_rows(config: Config, iteration: str) -> list[dict]:
    names = list(config.iterations)
    wanted = names[: names.index(iteration) + 1] if config.finetune.data == "all" else [iteration]
    rows = [row for name in wanted for row in read_rows(shards_dir(config, name), SHARD_ROW)]
    if not rows:
        raise ValueError(f"{iteration}: the curated shards hold no rows, so there is nothing to fine-tune on; "
                         f"see data/shards/{iteration}/manifest.json for where the candidates went")
    return rows


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def build_trainer(model, tokenizer, rows: list[dict], cfg: FinetuneConfig, seed: int, workdir: str):
    """TRL's SFTTrainer on prompt/completion conversations: chat template applied, loss on the answer only."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    tokenizer.padding_side = "right"
    args = SFTConfig(
        output_dir=workdir, num_train_epochs=cfg.epochs, learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        warmup_steps=cfg.warmup_ratio, lr_scheduler_type="cosine", max_length=cfg.max_length,
        completion_only_loss=True, seed=seed, data_seed=seed, save_strategy="no",
        report_to="none", logging_steps=10, use_cpu=not _has_gpu(), dataloader_num_workers=0,
    )
    dataset = Dataset.from_list([to_prompt_completion(r) for r in rows])
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)


def is_main_process() -> bool:
    """False in the extra processes `accelerate launch` starts; they train but do not lock or save."""
    return int(os.environ.get("RANK", "0")) == 0


def main(config: Config, iteration: str) -> dict:
    with guarded("finetune", iteration) if is_main_process() else contextlib.nullcontext():
        return _finetune(config, iteration)


def _finetune(config: Config, iteration: str) -> dict:
    generator = config.generator_dir(iteration)
    rows = training_rows(config, iteration)
    model, tokenizer = load_causal_lm(generator, policy=config.security.load_policy())
    workdir = tempfile.mkdtemp(prefix="selfsift-sft-")
    try:
        trainer = build_trainer(model, tokenizer, rows, config.finetune, config.seed, workdir)
        result = trainer.train()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    tokenizer.padding_side = "left"
    summary = {"iteration": iteration, "base": generator, "rows": len(rows), "train_loss": result.training_loss,
               "steps": result.global_step}

    def write_summary(folder: Path) -> None:
        summary["weights_sha256"] = model_sha256(folder)
        (folder / "selfsift_model.json").write_text(json.dumps(summary, indent=2) + "\n")

    if is_main_process():
        save_atomically(trainer.model, tokenizer, config.model_dir(iteration), finish=write_summary)
    return summary
