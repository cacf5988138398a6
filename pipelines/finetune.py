"""Stage `finetune` (not Beam): trains the next model on the curated data with TRL.

- `method`: SFT on the kept shards (loss on the answer only), or DPO on the preference pairs.
- `start_from`: the model that generated this iteration (continued training), or the base model
  (ReST-EM: retrain from the base each iteration, usually with `data: all`).
- `data` / `replay_fraction`: this iteration's rows, every iteration's so far, or this iteration's
  plus a seeded sample of earlier iterations' rows making up `replay_fraction` of the training set.
- `lora`: train low-rank adapters through peft and merge them, so every model folder is a plain one.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

from pipelines.config import Config, FinetuneConfig
from pipelines.run_guard import guarded
from schemas.records import PAIR, SHARD_ROW
from transforms.io.layout import BASE, Layout
from transforms.io.model_io import load_causal_lm, model_sha256, save_atomically
from transforms.io.parquet_io import read_rows
from transforms.io.sft_data import to_preference, to_prompt_completion

# What each method trains on: (folder of an iteration's records, their schema, the id column).
SOURCES = {"sft": (Layout.shards, SHARD_ROW, "candidate_id"), "dpo": (Layout.pairs, PAIR, "pair_id")}


def training_rows(config: Config, iteration: str) -> tuple[list[dict], int]:
    """(rows to train on, how many of them are replayed from earlier iterations)."""
    cfg = config.finetune
    folder_of, schema, id_column = SOURCES[cfg.method]
    names = list(config.iterations)
    earlier = names[: names.index(iteration)]
    current = read_rows(folder_of(config.layout, iteration), schema)
    if not current:
        what = "curated shards" if cfg.method == "sft" else "preference pairs"
        raise ValueError(f"{iteration}: the {what} hold no rows, so there is nothing to fine-tune on "
                         f"(finetune.method: {cfg.method}); see data/shards/{iteration}/manifest.json "
                         f"for where the candidates went")
    pool = [row for name in earlier for row in read_rows(folder_of(config.layout, name), schema)]
    if cfg.data == "all":
        return pool + current, len(pool)
    wanted = round(cfg.replay_fraction * len(current) / (1 - cfg.replay_fraction))
    replay = random.Random(config.seed).sample(sorted(pool, key=lambda r: r[id_column]), min(wanted, len(pool)))
    return replay + current, len(replay)


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def trainer_args(cfg: FinetuneConfig, seed: int, workdir: str) -> dict:
    return dict(
        output_dir=workdir, num_train_epochs=cfg.epochs, learning_rate=cfg.learning_rate,
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        warmup_steps=cfg.warmup_ratio, lr_scheduler_type="cosine", max_length=cfg.max_length,
        gradient_checkpointing=cfg.gradient_checkpointing, seed=seed, data_seed=seed, save_strategy="no",
        report_to="none", logging_steps=10,
        use_cpu=not _has_gpu(), dataloader_num_workers=0,
    )


def lora_config(cfg: FinetuneConfig):
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    lora = cfg.lora
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=lora.target_modules, task_type="CAUSAL_LM")


def build_trainer(model, tokenizer, rows: list[dict], cfg: FinetuneConfig, seed: int, workdir: str):
    """TRL's SFTTrainer (prompt/completion, loss on the answer) or DPOTrainer (prompt/chosen/rejected)."""
    from datasets import Dataset

    tokenizer.padding_side = "right"
    if cfg.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(**trainer_args(cfg, seed, workdir), beta=cfg.dpo_beta)
        dataset = Dataset.from_list([to_preference(r) for r in rows])
        return DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          peft_config=lora_config(cfg))
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(**trainer_args(cfg, seed, workdir), completion_only_loss=True)
    dataset = Dataset.from_list([to_prompt_completion(r) for r in rows])
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                      peft_config=lora_config(cfg))


def trained_tokens(trainer) -> int:
    """Tokens in one pass over the tokenized training set (prompts included; for DPO both answers)."""
    dataset = trainer.train_dataset  # SFT: input_ids; DPO: prompt_ids, chosen_ids, rejected_ids
    columns = [c for c in dataset.column_names if c in ("input_ids", "prompt_ids", "chosen_ids", "rejected_ids")]
    return sum(len(ids) for c in columns for ids in dataset[c])


def trained_model(trainer):
    """The trained model as a plain transformers model (LoRA adapters merged into the weights)."""
    model = trainer.model
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model


def is_main_process() -> bool:
    """False in the extra processes `accelerate launch` starts; they train but do not lock or save."""
    return int(os.environ.get("RANK", "0")) == 0


def main(config: Config, iteration: str) -> dict:
    with guarded("finetune", iteration) if is_main_process() else contextlib.nullcontext():
        return _finetune(config, iteration)


def start_model(config: Config, iteration: str) -> str:
    return config.layout.model(BASE) if config.finetune.start_from == "base" else config.generator_dir(iteration)


def _finetune(config: Config, iteration: str) -> dict:
    cfg = config.finetune
    start = start_model(config, iteration)
    rows, replayed = training_rows(config, iteration)
    model, tokenizer = load_causal_lm(start, policy=config.security.load_policy())
    workdir = tempfile.mkdtemp(prefix="selfsift-finetune-")
    try:
        trainer = build_trainer(model, tokenizer, rows, cfg, config.seed, workdir)
        result = trainer.train()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    tokenizer.padding_side = "left"
    summary = {"iteration": iteration, "base": start, "method": cfg.method, "lora": cfg.lora.enabled,
               "rows": len(rows), "replayed_rows": replayed, "train_loss": result.training_loss,
               "steps": result.global_step, "train_tokens": trained_tokens(trainer)}

    def write_summary(folder: Path) -> None:
        summary["weights_sha256"] = model_sha256(folder)
        (folder / "selfsift_model.json").write_text(json.dumps(summary, indent=2) + "\n")

    if is_main_process():
        save_atomically(trained_model(trainer), tokenizer, config.layout.model(iteration), finish=write_summary)
    return summary
