import json

import pytest

from pipelines import config as config_module
from pipelines import validate
from tests.stage_fixtures import chdir, prompt, shard_row, write_params, write_prompt_sets, write_shards

TRAIN = [prompt("t1", "Write about owls.", "train"), prompt("t2", "Write about bats.", "train")]
EVAL = [prompt("e1", "Write about frogs.", "eval")]
OOD = [prompt("o1", "Write about caves.", "eval_ood")]


@pytest.fixture
def workdir(tmp_path):
    write_params(tmp_path, "unused")
    write_prompt_sets(tmp_path, TRAIN, EVAL, OOD)
    return tmp_path


def run(workdir, rows):
    write_shards(workdir, "iter-001", rows)
    with chdir(workdir):
        config = config_module.load("params.yaml")
        return validate.main(config, "iter-001")


def test_clean_shards_pass_and_report_is_written(workdir):
    report = run(workdir, [shard_row("c1", TRAIN[0], "owls hoot"), shard_row("c2", TRAIN[1], "bats fly")])
    assert report["success"]
    saved = json.loads((workdir / "reports/validation/iter-001.json").read_text())
    assert saved["success"] and all(e["success"] for e in saved["expectations"])


@pytest.mark.parametrize("rows, expectation, column", [
    (lambda: [shard_row("c1", TRAIN[0], "same"), shard_row("c1", TRAIN[1], "other")],
     "expect_column_values_to_be_unique", "candidate_id"),
    (lambda: [shard_row("c1", TRAIN[0], "same text"), shard_row("c2", TRAIN[1], "Same  text")],
     "expect_column_values_to_be_unique", "text_sha256"),
    (lambda: [shard_row("c1", TRAIN[0], "weak", score=0.5)], "expect_column_values_to_be_between", "score"),
    (lambda: [shard_row("c1", EVAL[0], "leaked")], "expect_column_values_to_not_be_in_set", "prompt_id"),
    (lambda: [shard_row("c1", TRAIN[0], "cut", finish="length")], "expect_column_values_to_be_in_set", "finish_reason"),
    (lambda: [], "expect_table_row_count_to_be_between", None),
])
def test_violation_fails_with_readable_summary(workdir, rows, expectation, column):
    with pytest.raises(validate.ValidationFailed) as err:
        run(workdir, rows())
    message = str(err.value)
    assert expectation in message
    if column:
        assert f"column {column!r}" in message
    saved = json.loads((workdir / "reports/validation/iter-001.json").read_text())
    assert not saved["success"]


def test_eval_text_under_another_id_is_caught(workdir):
    disguised = {**EVAL[0], "prompt_id": "t9"}
    with pytest.raises(validate.ValidationFailed, match="prompt_text"):
        run(workdir, [shard_row("c1", disguised, "leaked again")])
