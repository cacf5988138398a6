"""evaluate on a tiny model: a check that raises is kept in the answer's `error` column and counted as
`n_errors`; above `evaluate.max_error_share` of a set's prompts the stage refuses to report an accuracy."""

import json
import shutil

import pytest

from pipelines.cli import main
from tests.stage_fixtures import chdir, write_params, write_prompt_sets
from transforms.io.parquet_io import read_rows

RAISES = "punctuation:no_comma"  # the check the tests make raise
FINE = "change_case:english_lowercase"


def prompt(pid: str, split: str, instruction: str) -> dict:
    return {"prompt_id": pid, "messages": [{"role": "user", "content": f"Describe thing {pid}."}],
            "instruction_ids": [instruction], "kwargs": ["{}"], "source": "test", "split": split}


EVAL = [prompt("e0", "eval", RAISES)] + [prompt(f"e{i}", "eval", FINE) for i in range(1, 10)]  # 1 of 10 raises
EVAL_OOD = [prompt(f"o{i}", "eval_ood", FINE) for i in range(4)]
ERROR = "LookupError: Resource punkt not found"


@pytest.fixture
def project(tmp_path, varied_model_dir, monkeypatch):
    from if_verifiable.ifeval import instructions_registry

    def check_that_raises(self, response):
        raise LookupError("Resource punkt\n  not found")

    monkeypatch.setattr(instructions_registry.INSTRUCTION_DICT[RAISES], "check_following", check_that_raises)
    shutil.copytree(varied_model_dir, tmp_path / "models/base")
    write_prompt_sets(tmp_path, [prompt("t0", "train", FINE)], EVAL, EVAL_OOD)
    return tmp_path


def evaluate_base(root, capsys, max_error_share: float):
    write_params(root, "unused", evaluate={"max_new_tokens": 4, "micro_batch_size": 8, "dtype": "float32",
                                           "max_error_share": max_error_share})
    with chdir(root):
        code = main(["evaluate", "--iteration", "0"])
    return code, capsys.readouterr().err


def test_a_check_that_raises_is_recorded_and_counted(project, capsys, caplog):
    code, err = evaluate_base(project, capsys, max_error_share=0.1)  # 1 of 10 is not above 10 %
    assert code == 0, err
    rows = {r["prompt_id"]: r for r in read_rows(str(project / "data/evals/iter-000"))}
    assert all(rows[p["prompt_id"]]["text"].strip() for p in EVAL)  # the checks ran on every answer
    assert rows["e0"]["error"] == ERROR and rows["e0"]["strict"] == [False] and rows["e0"]["loose"] == [False]
    assert all(r["error"] is None for pid, r in rows.items() if pid != "e0")
    metrics = json.loads((project / "metrics/iter-000.json").read_text())
    assert (metrics["n_errors"], metrics["n_prompts"], metrics["ood_n_errors"]) == (1, 10, 0)
    assert "checks raised on 1 of 10 eval prompts" in caplog.text


def test_above_the_share_no_accuracy_is_reported(project, capsys):
    stale = project / "metrics/iter-000.json"
    stale.parent.mkdir()
    stale.write_text('{"prompt_level_strict_acc": 0.9}\n')  # from an earlier run
    code, err = evaluate_base(project, capsys, max_error_share=0.05)
    assert code == 2
    assert "evaluate refuses to report an accuracy" in err and "eval: 1 of 10 prompts (10.0%)" in err, err
    assert "evaluate.max_error_share (5.0%)" in err and "eval_ood" not in err and "Traceback" not in err
    assert not stale.exists()
    assert [r["error"] for r in read_rows(str(project / "data/evals/iter-000")) if r["error"]] == [ERROR]


def test_a_share_outside_zero_to_one_is_refused_before_any_work(tmp_path):
    from pipelines.config import ConfigError, load

    write_params(tmp_path, "unused", evaluate={"max_error_share": 1.5})
    with pytest.raises(ConfigError, match=r"evaluate.max_error_share must be in \[0, 1\]"):
        load(tmp_path / "params.yaml")
