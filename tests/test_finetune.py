import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from pipelines import config as config_module
from pipelines.stages import finetune
from tests.records import shard_row
from tests.stage_fixtures import chdir, pair, prompt, write_pairs, write_params, write_shards
from transforms.io import faults
from transforms.io.layout import Layout
from transforms.io.model_io import load_causal_lm
from transforms.training.sft_data import to_prompt_completion

REPO = Path(__file__).resolve().parents[1]
TRAIN = [prompt(f"t{i}", f"Write about thing {i}.", "train") for i in range(6)]


def write_validation(root: Path, iteration: str, success: bool = True, failed=()) -> None:
    path = root / Layout.validation(iteration)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"iteration": iteration, "success": success, "schema_errors": [], "failed": list(failed)}))


@pytest.fixture
def workdir(tmp_path, tiny_model_dir):
    shutil.copytree(tiny_model_dir, tmp_path / "models" / "base")
    write_params(tmp_path, str(tiny_model_dir),
                 finetune={"epochs": 1, "batch_size": 2, "max_length": 64, "learning_rate": 1e-3})
    for iteration in ("iter-001", "iter-002"):
        write_validation(tmp_path, iteration)
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
    trainer, _ = finetune.build_trainer(model, tokenizer, rows, cfg, seed=0, workdir=str(tmp_path))
    batch = trainer.data_collator([trainer.train_dataset[0]])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    supervised = [t for t, label in zip(ids, labels, strict=True) if label != -100]
    assert tokenizer.decode(supervised).startswith("an answer about it")
    assert tokenizer.decode(supervised).strip().endswith(tokenizer.eos_token)
    assert "Write about thing 0." in tokenizer.decode(ids)  # the prompt, via the chat template, is not supervised
    assert "Write about" not in tokenizer.decode(supervised)


def answer_logprob(model, tokenizer, messages: list[dict], answer: str) -> float:
    """Mean log-probability per token of `answer` after the chat-templated `messages`."""
    prompt_ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([list(prompt_ids) + ids])).logits[0, len(prompt_ids) - 1 : -1]
    return torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(ids)[:, None]).mean().item()


def test_finetune_changes_weights_and_saves_a_loadable_model(workdir):
    write_shards(workdir, "iter-001", [shard_row(f"c{i}", p, f"answer number {i}") for i, p in enumerate(TRAIN)])
    with chdir(workdir):
        config = config_module.load("params.yaml")
        summary = finetune.main(config, "iter-001")
        before, _ = load_causal_lm("models/base")
        after, tokenizer = load_causal_lm("models/iter-001")
    assert summary["rows"] == len(TRAIN) and summary["steps"] == 3
    assert summary["train_tokens"] > 6 * 3  # chat-templated prompt and answer tokens of 6 rows
    changed = [name for name, p in after.state_dict().items() if not torch.equal(p, before.state_dict()[name])]
    assert changed, "no parameter changed"

    def gains(answer):  # how much more likely (log-probability per token) each prompt's answer became
        return [answer_logprob(after, tokenizer, p["messages"], answer.format(i)) -
                answer_logprob(before, tokenizer, p["messages"], answer.format(i)) for i, p in enumerate(TRAIN)]

    # trained on the rows' answers: each gained more than an answer it was never trained on
    learned, untrained = gains("answer number {}"), gains("a different reply {}")
    assert min(learned) > max(untrained) and min(learned) > 0, (learned, untrained)
    assert tokenizer.padding_side == "left"
    assert json.loads((workdir / "models/iter-001/selfsift_model.json").read_text())["base"] == "models/base"
    with open(workdir / "reports/training/iter-001/plots/metrics/loss.tsv") as f:  # DVCLive's loss curve, per step
        losses = [float(row["loss"]) for row in csv.DictReader(f, delimiter="\t")]
    assert len(losses) == summary["steps"]
    assert sum(losses) / len(losses) == pytest.approx(summary["train_loss"], rel=1e-3)


def changed_parameters(before_dir, after_dir) -> list[str]:
    before, _ = load_causal_lm(before_dir)
    after, _ = load_causal_lm(after_dir)
    assert set(after.state_dict()) == set(before.state_dict()), "saved model has other parameters (adapters left in?)"
    return [n for n, p in after.state_dict().items() if not torch.equal(p, before.state_dict()[n])]


def run_finetune(workdir, iteration="iter-001", **finetune_overrides) -> dict:
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["finetune"].update(finetune_overrides)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    with chdir(workdir):
        return finetune.main(config_module.load("params.yaml"), iteration)


def test_dpo_iteration_trains_on_the_pairs_and_saves_a_loadable_model(workdir):
    write_pairs(workdir, "iter-001", [pair(f"p{i}", p, f"a good answer {i}", f"bad {i}") for i, p in enumerate(TRAIN)])
    summary = run_finetune(workdir, method="dpo")
    assert summary["method"] == "dpo" and summary["rows"] == len(TRAIN) and summary["steps"] == 3
    assert summary["train_tokens"] > 6 * 3  # prompt, chosen and rejected tokens of 6 pairs
    assert changed_parameters(workdir / "models/base", workdir / "models/iter-001")
    (before, tokenizer), (after, _) = load_causal_lm(workdir / "models/base"), load_causal_lm(workdir / "models/iter-001")

    def margin(model, p, i):  # DPO's implicit reward: how much more likely the chosen answer is than the rejected
        return answer_logprob(model, tokenizer, p["messages"], f"a good answer {i}") - \
            answer_logprob(model, tokenizer, p["messages"], f"bad {i}")

    gains = [margin(after, p, i) - margin(before, p, i) for i, p in enumerate(TRAIN)]
    assert min(gains) > 0, gains  # every training pair: the chosen answer gained on the rejected one


def test_dpo_prefers_the_chosen_answer_more_after_training(workdir):
    rows = [pair(f"p{i}", p, "Yes indeed, a careful answer.", "no") for i, p in enumerate(TRAIN)]
    write_pairs(workdir, "iter-001", rows)
    run_finetune(workdir, method="dpo", epochs=3)

    def margin(model_dir):
        model, tokenizer = load_causal_lm(model_dir)
        prompt_text = tokenizer.apply_chat_template(rows[0]["prompt"], add_generation_prompt=True, tokenize=False)
        prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]

        def logprob(text):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            full = torch.tensor([list(prompt_ids) + ids])
            with torch.no_grad():
                logits = model(full).logits[0, len(prompt_ids) - 1:-1]
            return torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(ids)[:, None]).sum().item()

        return logprob("Yes indeed, a careful answer.") - logprob("no")

    assert margin(workdir / "models/iter-001") > margin(workdir / "models/base")


@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_lora_iteration_merges_its_adapters_into_a_plain_model(workdir, method):
    write_shards(workdir, "iter-001", [shard_row(f"c{i}", p, f"answer number {i}") for i, p in enumerate(TRAIN)])
    write_pairs(workdir, "iter-001", [pair(f"p{i}", p, f"a good answer {i}", f"bad {i}") for i, p in enumerate(TRAIN)])
    summary = run_finetune(workdir, method=method, lora={"enabled": True, "r": 4, "alpha": 8})
    assert summary["lora"] is True
    changed = changed_parameters(workdir / "models/base", workdir / "models/iter-001")
    assert changed and all("proj" in name for name in changed), changed  # only adapted linear layers moved
    assert not any("embed" in name or "norm" in name for name in changed)
    assert not list((workdir / "models/iter-001").glob("adapter_*"))


def test_start_from_base_retrains_the_base_model_not_the_generator(workdir):
    write_params(workdir, "unused", iterations={"iter-001": {"generator": "base"}, "iter-002": {"generator": "iter-001"}},
                 finetune={"epochs": 1, "batch_size": 2, "max_length": 64, "learning_rate": 1e-3})
    for name in ("iter-001", "iter-002"):
        write_shards(workdir, name, [shard_row(f"{name}-{i}", p, f"answer {name} {i}") for i, p in enumerate(TRAIN)])
    run_finetune(workdir, "iter-001")
    summary = run_finetune(workdir, "iter-002", start_from="base", data="all")
    assert summary["base"] == "models/base" and summary["rows"] == 2 * len(TRAIN) and summary["replayed_rows"] == len(TRAIN)
    continued = run_finetune(workdir, "iter-002", start_from="previous", data="iteration")
    assert continued["base"] == "models/iter-001" and continued["rows"] == len(TRAIN)


def test_replay_fraction_mixes_a_seeded_share_of_earlier_rows(workdir):
    write_params(workdir, "unused", iterations={"iter-001": {"generator": "base"}, "iter-002": {"generator": "iter-001"}},
                 finetune={"replay_fraction": 0.25})
    for name, n in (("iter-001", 12), ("iter-002", 6)):
        write_shards(workdir, name, [shard_row(f"{name}-{i}", TRAIN[i % 6], f"answer {name} {i}") for i in range(n)])
    with chdir(workdir):
        config = config_module.load("params.yaml")
        rows, replayed = finetune.training_rows(config, "iter-002")
        again, _ = finetune.training_rows(config, "iter-002")
    assert replayed == 2 and len(rows) == 8  # 2 of 8 rows (25 %) from iter-001, all 6 of iter-002
    assert [r["candidate_id"] for r in rows] == [r["candidate_id"] for r in again]
    assert sum(r["candidate_id"].startswith("iter-001") for r in rows) == 2


def test_replay_needs_data_iteration(workdir):
    write_params(workdir, "unused", finetune={"replay_fraction": 0.5, "data": "all"})
    with pytest.raises(config_module.ConfigError, match="replay_fraction needs data: iteration"):
        config_module.load(workdir / "params.yaml")


def test_dpo_without_pairs_is_a_clear_error(workdir):
    write_pairs(workdir, "iter-001", [])
    with pytest.raises(ValueError, match="preference pairs hold no rows"):
        run_finetune(workdir, method="dpo")
    assert not (workdir / "models/iter-001").exists()


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


@pytest.mark.parametrize("init", ["pretrained", "random"])
def test_prepare_model_keeps_or_reinitialises_the_weights(tmp_path, tiny_model_dir, init):
    from pipelines.stages import prepare_model

    write_params(tmp_path, str(tiny_model_dir), base_model={"source": str(tiny_model_dir), "sha256": "", "init": init})
    with chdir(tmp_path):
        prepare_model.main(config_module.load("params.yaml"))
    source, _ = load_causal_lm(tiny_model_dir)
    prepared, tokenizer = load_causal_lm(tmp_path / "models/base")
    assert prepared.config.to_dict()["hidden_size"] == source.config.hidden_size
    assert tokenizer.get_vocab() == load_causal_lm(tiny_model_dir)[1].get_vocab()
    same = [torch.equal(p, source.state_dict()[n]) for n, p in prepared.state_dict().items() if p.dim() == 2]
    assert all(same) if init == "pretrained" else not any(same)
    assert json.loads((tmp_path / "models/base/selfsift_model.json").read_text())["init"] == init


@pytest.mark.parametrize("report", ["missing", "failed"])
def test_an_iteration_that_did_not_pass_validation_is_not_fine_tuned(workdir, report):
    write_shards(workdir, "iter-001", [shard_row(f"c{i}", p, f"answer number {i}") for i, p in enumerate(TRAIN)])
    path = workdir / Layout.validation("iter-001")
    if report == "missing":
        path.unlink()
    else:
        write_validation(workdir, "iter-001", success=False, failed=["shards.no_duplicate_text"])
    expected = "no validation report" if report == "missing" else "validation failed .*shards.no_duplicate_text"
    with pytest.raises((FileNotFoundError, ValueError), match=f"iter-001: {expected}"):
        run_finetune(workdir)
    assert not (workdir / "models/iter-001").exists()


def templated_length(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> int:
    return len(tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=True,
                                             return_dict=False))


@pytest.mark.parametrize("method", ["sft", "dpo"])
def test_truncation_at_max_length_is_counted_in_the_model_summary(workdir, method):
    """Two rows run past max_length (their ends are cut), one prompt alone fills it (the row is dropped,
    nothing of its answer is left), the rest fit."""
    long_answer = " ".join(f"word{i}" for i in range(40))
    long_prompt = prompt("t-long", "Describe " + " ".join(f"item{i}" for i in range(80)), "train")
    prompts = [*TRAIN[:5], long_prompt]
    answers = ["short", "also short", long_answer, long_answer + " more", "fine", "lost"]
    write_shards(workdir, "iter-001", [shard_row(f"c{i}", p, a) for i, (p, a) in enumerate(zip(prompts, answers))])
    write_pairs(workdir, "iter-001", [pair(f"p{i}", p, a, "no") for i, (p, a) in enumerate(zip(prompts, answers))])
    summary = run_finetune(workdir, method=method, max_length=64)

    _, tokenizer = load_causal_lm(workdir / "models/base")
    cuts, dropped = [], 0
    for p, answer in zip(prompts, answers):
        if templated_length(tokenizer, p["messages"], add_generation_prompt=True) >= 64:
            dropped += 1
            continue
        answers_trained = [answer] if method == "sft" else [answer, "no"]
        cuts.append(sum(max(0, templated_length(tokenizer, p["messages"] + [{"role": "assistant", "content": a}]) - 64)
                        for a in answers_trained))
    assert dropped == 1 and sum(c > 0 for c in cuts) == 2  # the fixture does what its docstring says
    assert (summary["truncated_rows"], summary["truncated_tokens"], summary["dropped_rows"]) == (2, sum(cuts), 1)
    saved = json.loads((workdir / "models/iter-001/selfsift_model.json").read_text())
    assert {k: saved[k] for k in ("truncated_rows", "truncated_tokens", "dropped_rows")} == {
        "truncated_rows": 2, "truncated_tokens": sum(cuts), "dropped_rows": 1}


class Killed(Exception):
    """Stands in for SIGKILL at a kill point (the real one is in tests/test_fault_injection.py)."""


def kill_at(monkeypatch, point: str, nth: int) -> None:
    hits = []

    def reached(name):
        hits.append(name)
        if hits.count(point) == nth and name == point:
            raise Killed(point)

    monkeypatch.setattr(faults, "reached", reached)


RESUMABLE = {"epochs": 2, "checkpoint_steps": 2}  # 6 rows, batch 2: 6 steps, checkpoints after steps 2 and 4


def weights(model_dir) -> dict:
    model, _ = load_causal_lm(model_dir)
    return model.state_dict()


# LoRA dropout draws random numbers, so its resume also needs the RNG state of the checkpoint.
@pytest.mark.parametrize("variant", [{}, {"lora": {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.1}}],
                         ids=["full", "lora-dropout"])
def test_a_killed_finetune_resumes_from_its_last_complete_checkpoint_to_the_same_weights(workdir, tmp_path_factory,
                                                                                        monkeypatch, caplog, variant):
    write_shards(workdir, "iter-001", [shard_row(f"c{i}", p, f"answer number {i}") for i, p in enumerate(TRAIN)])
    reference = tmp_path_factory.mktemp("uninterrupted")
    shutil.copytree(workdir, reference, dirs_exist_ok=True)
    params = {**RESUMABLE, **variant}
    expected = run_finetune(reference, **params)

    kill_at(monkeypatch, "after_checkpoint", 2)
    with pytest.raises(Killed):
        run_finetune(workdir, **params)
    folder = workdir / ".selfsift/runs/finetune@iter-001.checkpoints"
    assert sorted(p.name for p in folder.glob("checkpoint-*")) == ["checkpoint-4"]  # the older one went
    shutil.copytree(folder / "checkpoint-4", folder / "checkpoint-5")
    (folder / "checkpoint-5" / "selfsift_checkpoint.json").unlink()  # a save the kill interrupted
    monkeypatch.undo()

    caplog.set_level("INFO", logger="selfsift")
    resumed = run_finetune(workdir, **params)
    assert "checkpoint-5 was not completely saved" in caplog.text
    assert "finetune@iter-001: resuming from the checkpoint of step 4" in caplog.text
    assert resumed == expected  # steps, loss (to the bit) and weights_sha256
    after, before = weights(workdir / "models/iter-001"), weights(reference / "models/iter-001")
    assert all(torch.equal(after[name], before[name]) for name in before)
    assert not folder.exists()  # removed once the model is saved


def test_checkpoints_of_other_training_inputs_are_not_resumed(workdir, monkeypatch, caplog):
    write_shards(workdir, "iter-001", [shard_row(f"c{i}", p, f"answer number {i}") for i, p in enumerate(TRAIN)])
    kill_at(monkeypatch, "after_checkpoint", 1)
    with pytest.raises(Killed):
        run_finetune(workdir, **RESUMABLE)
    monkeypatch.undo()
    write_shards(workdir, "iter-001", [shard_row(f"c{i}", p, f"another answer {i}") for i, p in enumerate(TRAIN)])
    caplog.set_level("INFO", logger="selfsift")
    summary = run_finetune(workdir, **RESUMABLE)
    assert "inputs changed since the interrupted run; its checkpoints are not reused" in caplog.text
    assert "resuming" not in caplog.text and summary["steps"] == 6
