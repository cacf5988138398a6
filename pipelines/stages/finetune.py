"""Stage `finetune` (not Beam): trains the next model on the curated data with TRL.

- `method`: SFT on the kept shards (loss on the answer only), or DPO on the preference pairs.
- `start_from`: the model that generated this iteration (continued training), or the base model
  (ReST-EM: retrain from the base each iteration, usually with `data: all`).
- `data` / `replay_fraction`: this iteration's rows, every iteration's so far, or this iteration's
  plus a seeded sample of earlier iterations' rows making up `replay_fraction` of the training set.
- `lora`: train low-rank adapters through peft and merge them, so every model folder is a plain one.

It trains only on an iteration whose validation passed (`reports/validation/<iteration>.json`).
Every `checkpoint_steps` steps the training state is saved outside the DVC output
(pipelines/run/resume.py), so a killed run resumes from the last complete checkpoint to the same weights.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from transformers import TrainerCallback

from pipelines.config import Config, FinetuneConfig, iteration_number
from pipelines.run.guard import guarded
from pipelines.run.resume import Checkpoint, Checkpoints
from pipelines.run.runtime import code_fingerprint, params_hash
from pipelines.stage import Out, Stage, iteration_of
from schemas.records import PAIR, SHARD_ROW
from transforms.io import faults
from transforms.io.layout import BASE, MODEL_SUMMARY, Layout
from transforms.io.model_io import load_causal_lm, model_sha256, save_atomically
from transforms.io.parquet_io import read_rows
from transforms.training import sft_data
from transforms.training.sft_data import (
    Truncation,
    preference_truncation,
    to_preference,
    to_prompt_completion,
    truncate_completions,
)

if TYPE_CHECKING:
    from transformers import Trainer

log = logging.getLogger("selfsift")

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
        gradient_checkpointing=cfg.gradient_checkpointing, seed=seed, data_seed=seed,
        bf16=cfg.bf16,  # explicit: TRL's configs default to True
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        save_strategy="no",  # CheckpointEvery saves: every checkpoint_steps, never at the last step
        report_to="none", logging_steps=1,  # the loss curve (loss_tracker) gets every step
        use_cpu=not _has_gpu(), dataloader_num_workers=0,
    )


def lora_config(cfg: FinetuneConfig):
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    lora = cfg.lora
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=lora.target_modules, task_type="CAUSAL_LM")


def build_trainer(model, tokenizer, rows: list[dict], cfg: FinetuneConfig, seed: int,
                  workdir: str) -> tuple[Trainer, Truncation]:
    """TRL's SFTTrainer (prompt/completion, loss on the answer) or DPOTrainer (prompt/chosen/rejected),
    and what fitting the rows into `max_length` tokens cuts."""
    from datasets import Dataset

    tokenizer.padding_side = "right"
    if cfg.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(**trainer_args(cfg, seed, workdir), beta=cfg.dpo_beta)
        dataset = Dataset.from_list([to_preference(r) for r in rows])
        trainer: Trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                      peft_config=lora_config(cfg))
        return trainer, preference_truncation(trainer.train_dataset, cfg.max_length, len(rows))
    from trl import SFTConfig, SFTTrainer

    # TRL would truncate without saying how much; the full rows are tokenized and cut here, counted.
    sft_args = SFTConfig(**{**trainer_args(cfg, seed, workdir), "max_length": None}, completion_only_loss=True,
                         padding_free=cfg.padding_free)
    dataset = Dataset.from_list([to_prompt_completion(r) for r in rows])
    trainer = SFTTrainer(model=model, args=sft_args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=lora_config(cfg))
    trainer.train_dataset, truncation = truncate_completions(trainer.train_dataset, cfg.max_length)
    return trainer, truncation


class CheckpointEvery(TrainerCallback):
    """Saves the training state every `steps` steps (not at the last: the stage saves the model then),
    marks each checkpoint complete once every process has written it, and carries the loss sum
    across a resume."""

    def __init__(self, trainer, steps: int, checkpoints: Checkpoints, resumed: Checkpoint | None):
        self.trainer, self.steps, self.checkpoints = trainer, steps, checkpoints
        self.loss_before = resumed.record["loss_sum"] if resumed else 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        # Trainer sums the losses of this call's steps only (`_total_loss_scalar`); starting from the
        # checkpoint's sum gives a resumed run the mean loss of an uninterrupted one, to the bit.
        if not hasattr(self.trainer, "_total_loss_scalar"):
            raise RuntimeError("transformers' Trainer no longer has _total_loss_scalar; resuming needs another way "
                               "to carry the training loss (pipelines/stages/finetune.py, CheckpointEvery)")
        self.trainer._total_loss_scalar = self.loss_before

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.steps == 0 and state.global_step < state.max_steps:
            control.should_save = True
            control.should_log = True  # moves the steps' losses into the sum the checkpoint records
        return control

    def on_save(self, args, state, control, **kwargs):
        from accelerate import PartialState

        PartialState().wait_for_everyone()  # every process has written its part of the checkpoint
        if state.is_world_process_zero:
            self.checkpoints.mark_complete(state.global_step, {"loss_sum": self.trainer._total_loss_scalar})
        faults.reached("after_checkpoint")
        return control


def loss_tracker(iteration: str, resumed: Checkpoint | None):
    """Logs every step's loss and learning rate to `Layout.training_log(iteration)` (DVCLive's step i
    is training step i + 1); a resumed run continues the log from its checkpoint."""
    from transformers.integrations import DVCLiveCallback

    from transforms.training.training_log import training_log

    return DVCLiveCallback(live=training_log(Layout.training_log(iteration), resumed.step if resumed else None))


def mean_loss(trainer, result) -> float:
    """The mean training loss over every step, those before a resume included (TrainOutput's covers
    only the steps of its own call)."""
    return trainer._total_loss_scalar / max(result.global_step, 1)


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
    with guarded("finetune", iteration, config) if is_main_process() else contextlib.nullcontext():
        return _finetune(config, iteration)


def start_model(config: Config, iteration: str) -> str:
    return config.layout.model(BASE) if config.finetune.start_from == "base" else config.generator_dir(iteration)


def require_validated(iteration: str) -> None:
    """Refuses an iteration whose data has not passed validation. DVC runs validate first, but a stage
    run by hand, or a workspace where validate failed, must not train on unchecked data."""
    path = Layout.validation(iteration)
    again = f"`selfsift validate --iteration {iteration_number(iteration)}` (or `dvc repro`)"
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{iteration}: no validation report at {path}, so its data is unchecked; run {again} "
                                f"before fine-tuning") from None
    except ValueError as exc:
        raise ValueError(f"{iteration}: the validation report {path} cannot be read ({exc}); run {again}") from None
    if report.get("success") is not True:
        failed = report.get("schema_errors") or report.get("failed") or ["success is not true"]
        raise ValueError(f"{iteration}: validation failed ({path}: {'; '.join(map(str, failed))}), so it is not "
                         f"fine-tuned on; fix the data or the suites, then run {again}")


def training_fingerprint(config: Config, start: str, rows: list[dict]) -> str:
    """What determines the trained weights: params, seed, start model, rows, code, libraries and process count."""
    versions = {name: importlib.metadata.version(name) for name in ("trl", "peft", "accelerate", "datasets")}
    return params_hash(config.finetune, config.seed, model_sha256(start), rows, versions,
                       os.environ.get("WORLD_SIZE", "1"), code_fingerprint(sys.modules[__name__], sft_data))


def _finetune(config: Config, iteration: str) -> dict:
    cfg = config.finetune
    name = f"finetune@{iteration}"
    require_validated(iteration)
    start = start_model(config, iteration)
    rows, replayed = training_rows(config, iteration)
    model, tokenizer = load_causal_lm(start, policy=config.security.load_policy())
    checkpoints = Checkpoints(name, training_fingerprint(config, start, rows))
    if is_main_process():
        checkpoints.prepare()
    trainer, truncation = build_trainer(model, tokenizer, rows, cfg, config.seed, str(checkpoints.folder))
    trainer.accelerator.wait_for_everyone()  # the main process has removed what cannot be resumed
    resumed = checkpoints.last_complete()
    if resumed:
        log.info("%s: resuming from the checkpoint of step %d (%s); the steps before it are not trained again",
                 name, resumed.step, resumed.path)
    trainer.add_callback(CheckpointEvery(trainer, cfg.checkpoint_steps, checkpoints, resumed))
    if is_main_process():
        trainer.add_callback(loss_tracker(iteration, resumed))
    result = trainer.train(resume_from_checkpoint=str(resumed.path) if resumed else None)
    if truncation.rows or truncation.dropped_rows:
        log.warning("%s: finetune.max_length %d cut %d of %d rows short (%d tokens) and dropped %d rows that kept no "
                    "answer token (counted in the model summary)", name, cfg.max_length, truncation.rows, len(rows),
                    truncation.tokens, truncation.dropped_rows)
    tokenizer.padding_side = "left"
    summary = {"iteration": iteration, "base": start, "method": cfg.method, "lora": cfg.lora.enabled,
               "bf16": cfg.bf16, "padding_free": cfg.padding_free and cfg.method == "sft",  # TRL's DPOTrainer pads
               "group_by_length": cfg.group_by_length,
               "rows": len(rows), "replayed_rows": replayed, "train_loss": mean_loss(trainer, result),
               "steps": result.global_step, "train_tokens": trained_tokens(trainer), **truncation.summary()}

    def write_summary(folder: Path) -> None:
        summary["weights_sha256"] = model_sha256(folder)
        (folder / MODEL_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")

    if is_main_process():
        save_atomically(trained_model(trainer), tokenizer, config.layout.model(iteration), finish=write_summary)
        checkpoints.clear()
    return summary


STAGE = Stage(
    "finetune", "fine-tune the generator on the shards",
    lambda args, config, beam: main(config, iteration_of(args, config)),
    params=("seed", "finetune"),
    reads=lambda where: [where.layout.shards(where.iteration), where.layout.pairs(where.iteration),
                         str(Layout.validation(where.iteration)), where.generator_model, where.layout.model(BASE)],
    writes=lambda where: [Out(where.model),
                          Out(f"{Layout.training_log(where.iteration)}/metrics.json", "metrics", cache=False),
                          Out(f"{Layout.training_log(where.iteration)}/plots", "plots", cache=False, x="step")],
    consumes=lambda where: str(Layout.validation(where.iteration)),
    produces=lambda where: where.summary,
    each_iteration=True)
