import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pipelines import config as config_module
from pipelines import finetune
from tests.stage_fixtures import chdir, prompt, shard_row, write_params, write_shards
from transforms.model_io import load_causal_lm
from transforms.sft_data import to_prompt_completion

REPO = Path(__file__).resolve().parents[1]
TRAIN = [prompt(f"t{i}", f"Write about thing {i}.", "train") for i in range(6)]


@pytest.fixture
def workdir(tmp_path, tiny_model_dir):
    shutil.copytree(tiny_model_dir, tmp_path / "models" / "base")
    write_params(tmp_path, str(tiny_model_dir),
                 finetune={"epochs": 1, "batch_size": 2, "max_length": 64, "learning_rate": 1e-3})
    return tmp_path


def test_to_prompt_completion_keeps_roles():
    row = shard_row("c1", TRAIN[0], "an answer")
    assert to_prompt_completion(row) == {
        "prompt": [{"role": "user", "content": "Write about thing 0."}],
        "completion": [{"role": "assistant", "content": "an answer"}],
    }


def test_loss_covers_the_answer_only(tiny_model_dir, tmp_path):
    model, tokenizer = load_causal_lm(tiny_model_dir)
    rows = [shard_row("c1", TRAIN[0], "an answer about it")]
    cfg = config_module.FinetuneConfig(max_length=128)
    trainer = finetune.build_trainer(model, tokenizer, rows, cfg, seed=0, workdir=str(tmp_path))
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    supervised = [t for t, label in zip(ids, labels, strict=True) if label != -100]
    assert tokenizer.decode(supervised).startswith("an answer about it")
    assert tokenizer.decode(supervised).strip().endswith(tokenizer.eos_token)
    assert "Write about thing 0." in tokenizer.decode(ids)  # the prompt, via the chat template, is not supervised
    assert "Write about" not in tokenizer.decode(supervised)


def test_finetune_changes_weights_and_saves_a_loadable_model(workdir):
    write_shards(workdir, "iter-001", [shard_row(f"c{i}", p, f"answer number {i}") for i, p in enumerate(TRAIN)])
    with chdir(workdir):
        config = config_module.load("params.yaml")
        summary = finetune.main(config, "iter-001")
        before, _ = load_causal_lm("models/base")
        after, tokenizer = load_causal_lm("models/iter-001")
    assert summary["rows"] == len(TRAIN) and summary["steps"] == 3
    changed = [name for name, p in after.state_dict().items() if not torch.equal(p, before.state_dict()[name])]
    assert changed, "no parameter changed"
    assert tokenizer.padding_side == "left"
    assert json.loads((workdir / "models/iter-001/selfsift_model.json").read_text())["base"] == "models/base"


def test_no_rows_is_a_clear_error(workdir):
    write_shards(workdir, "iter-001", [])
    with chdir(workdir):
        config = config_module.load("params.yaml")
        with pytest.raises(ValueError, match="nothing to fine-tune on"):
            finetune.main(config, "iter-001")
    assert not (workdir / "models/iter-001").exists()


def test_runs_unchanged_as_two_distributed_processes(workdir):
    """The multi-GPU path on 2 CPU processes (gloo instead of NCCL): `accelerate launch --multi_gpu` starts
    its processes with torch.distributed.run, as torchrun does here. Each process trains on its share of
    the rows; only the main one locks and saves."""
    write_shards(workdir, "iter-001", [shard_row(f"c{i}", p, f"answer number {i}") for i, p in enumerate(TRAIN)])
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    launch = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node", "2",
              "-m", "pipelines.cli", "finetune", "--iteration", "1"]
    result = subprocess.run(launch, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    summary = json.loads((workdir / "models/iter-001/selfsift_model.json").read_text())
    assert summary["rows"] == len(TRAIN)
    assert summary["steps"] == 2  # 6 rows, batch 2 per process, 2 processes: 2 steps (3 on one process)
    before, _ = load_causal_lm(workdir / "models/base")
    after, _ = load_causal_lm(workdir / "models/iter-001")
    assert any(not torch.equal(p, before.state_dict()[n]) for n, p in after.state_dict().items())
