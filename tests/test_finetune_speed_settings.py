"""The fine-tuning speed settings (`finetune.padding_free`, `bf16`, `group_by_length`) train on what the
padded path trains on: the same supervised tokens, the same loss on a fixed batch, float32 weights."""

import json
import struct

import pytest
import torch

from pipelines.config import FinetuneConfig
from pipelines.stages import finetune
from tests.records import shard_row
from tests.stage_fixtures import prompt, write_shards
from tests.test_finetune import TRAIN, run_finetune, workdir  # noqa: F401 (workdir: the fixture)
from transforms.io.model_io import load_causal_lm
from transforms.training.sft_data import IGNORED

# Answers of different lengths, so that padded rows carry padding and packed rows differ in length.
ROWS = [shard_row(f"c{i}", prompt(f"p{i}", f"Question {i}: " + "why " * (i % 3), "train"), "word " * (2 + 5 * i))
        for i in range(4)]


def trainer_for(model_dir, tmp_path, rows=ROWS, batch_size=4, **settings):
    model, tokenizer = load_causal_lm(model_dir)
    cfg = FinetuneConfig(max_length=128, batch_size=batch_size, learning_rate=1e-2, **settings)
    trainer, _ = finetune.build_trainer(model, tokenizer, rows, cfg, seed=0, workdir=str(tmp_path))
    return trainer


def collated(trainer) -> dict:
    """Every row of the training set, collated into one batch the way the trainer collates a batch."""
    return trainer.data_collator([trainer.train_dataset[i] for i in range(len(trainer.train_dataset))])


def loss_targets(batch) -> list[list[int]]:
    """Per sequence, the tokens the loss is taken on (a label at position t is predicted from positions < t),
    in order. A packed batch is one row holding every sequence; its position ids restart at each."""
    if "position_ids" in batch:
        starts = (batch["position_ids"][0] == 0).nonzero().flatten().tolist() + [batch["input_ids"].shape[1]]
        rows = [batch["labels"][0, a:b] for a, b in zip(starts, starts[1:])]
    else:
        rows = list(batch["labels"])
    return [[t for t in row[1:].tolist() if t != IGNORED] for row in rows]


def test_padding_free_supervises_the_same_answer_tokens(tiny_model_dir, tmp_path):
    padded = collated(trainer_for(tiny_model_dir, tmp_path / "padded", padding_free=False))
    packed = collated(trainer_for(tiny_model_dir, tmp_path / "packed", padding_free=True))
    assert "attention_mask" in padded and "attention_mask" not in packed
    assert packed["input_ids"].shape[0] == 1
    assert packed["input_ids"].shape[1] == int(padded["attention_mask"].sum()) < padded["input_ids"].numel()
    assert loss_targets(packed) == loss_targets(padded)
    assert all(len(targets) >= 3 for targets in loss_targets(packed))
    # no sequence's first token is a target: it would be predicted from the sequence packed before it
    assert (packed["labels"][packed["position_ids"] == 0] == IGNORED).all()


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_rows_give_the_padded_loss_because_they_do_not_attend_to_each_other(varied_model_dir, tmp_path,
                                                                                   attention):
    """transformers builds a block-causal mask from position ids that restart, but only without a KV cache:
    the trainer's path (SFTTrainer.compute_loss passes use_cache=False) is what is checked here."""
    losses = {}
    for name, settings in {"padded": {"padding_free": False}, "packed": {"padding_free": True}}.items():
        trainer = trainer_for(varied_model_dir, tmp_path / name, **settings)
        trainer.model.set_attn_implementation(attention)
        trainer.model.eval()
        with torch.no_grad():
            losses[name] = trainer.compute_loss(trainer.model, collated(trainer)).item()
            if name == "packed":  # the control: the same tokens as one sequence, each row seeing the rows before
                batch = collated(trainer)
                losses["leaky"] = trainer.compute_loss(trainer.model, {k: batch[k] for k in ("input_ids", "labels")})
    assert losses["packed"] == pytest.approx(losses["padded"], rel=1e-5, abs=1e-6)
    assert abs(losses["leaky"].item() - losses["padded"]) > 1e-3, "the control cannot tell attention across rows apart"


def test_padding_free_trains_to_the_padded_loss(tiny_model_dir, tmp_path):
    losses = {}
    for name, settings in {"padded": {"padding_free": False}, "packed": {"padding_free": True}}.items():
        trainer = trainer_for(tiny_model_dir, tmp_path / name, bf16=False, **settings)
        trainer.args.max_steps = 3  # every row in each step: the later losses follow the earlier updates
        trainer.train()
        losses[name] = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses["packed"]) == 3 and losses["packed"][2] < losses["packed"][0]
    assert losses["packed"] == pytest.approx(losses["padded"], rel=1e-4)


def linear_output_dtypes(trainer) -> set:
    seen = set()
    layer = trainer.model.model.layers[0].mlp.down_proj
    layer.register_forward_hook(lambda module, inputs, output: seen.add(output.dtype))
    trainer.args.max_steps = 1
    trainer.train()
    return seen


@pytest.mark.parametrize("bf16, computed_in", [(True, {torch.bfloat16}), (False, {torch.float32})])
def test_bf16_autocasts_the_matmuls_and_keeps_the_weights_float32(tiny_model_dir, tmp_path, bf16, computed_in):
    trainer = trainer_for(tiny_model_dir, tmp_path, bf16=bf16)
    assert linear_output_dtypes(trainer) == computed_in
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}


def safetensors_dtypes(path) -> set[str]:
    with open(path, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    return {entry["dtype"] for name, entry in header.items() if name != "__metadata__"}


def test_the_stage_saves_float32_weights_and_records_its_speed_settings(workdir):  # noqa: F811
    write_shards(workdir, "iter-001", [shard_row(f"c{i}", p, f"answer number {i}") for i, p in enumerate(TRAIN)])
    summary = run_finetune(workdir, bf16=True, padding_free=True, group_by_length=True)
    assert safetensors_dtypes(workdir / "models/iter-001/model.safetensors") == {"F32"}
    recorded = json.loads((workdir / "models/iter-001/selfsift_model.json").read_text())
    assert {k: recorded[k] for k in ("bf16", "padding_free", "group_by_length")} == {
        "bf16": True, "padding_free": True, "group_by_length": True}
    assert {key: recorded[key] for key in summary} == summary


def padding_per_epoch(trainer) -> int:
    """Padding tokens in one epoch of the trainer's batches, in the order its sampler draws them."""
    return sum(int((batch["attention_mask"] == 0).sum()) for batch in trainer.get_train_dataloader())


def test_group_by_length_batches_rows_of_similar_length(tiny_model_dir, tmp_path):
    # 32 rows, batches of 2: transformers groups by length within mega-batches of 8 rows
    rows = [shard_row(f"c{i}", prompt(f"p{i}", "Say it.", "train"), "word " * (1 + (i * 7) % 32)) for i in range(32)]
    padding = {}
    for grouped in (False, True):
        trainer = trainer_for(tiny_model_dir, tmp_path / str(grouped), rows, batch_size=2, padding_free=False,
                              group_by_length=grouped)
        torch.manual_seed(0)
        padding[grouped] = padding_per_epoch(trainer)
    assert padding[True] < padding[False] / 2, padding
