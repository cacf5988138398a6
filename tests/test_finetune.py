import json
import shutil

import pytest
import torch

from pipelines import config as config_module
from pipelines import finetune
from tests.stage_fixtures import chdir, prompt, shard_row, write_params, write_shards
from transforms.model_io import load_causal_lm
from transforms.sft_data import to_prompt_completion

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
