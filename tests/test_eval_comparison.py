import pytest

from pipelines import cli
from schemas.records import EVAL_RESULT
from tests.stage_fixtures import write_params, write_shards
from transforms.evaluation.comparison import UnpairedAnswers, compare_answers, paired_difference
from transforms.health.intervals import mcnemar_exact


def answers(passed: list[bool], split: str = "eval") -> list[dict]:
    return [{"prompt_id": f"p{i}", "split": split, "passed": p} for i, p in enumerate(passed)]


def test_the_difference_is_paired_prompt_by_prompt():
    a = answers([True] * 10 + [False] * 30)
    b = answers([True] * 8 + [False] * 2 + [True] * 12 + [False] * 18)  # 12 gained, 2 lost
    c = paired_difference(a, b)
    assert (c["gained"], c["lost"], c["n_prompts"]) == (12, 2, 40)
    assert c["difference"] == pytest.approx(10 / 40)
    assert c["p_value"] == pytest.approx(mcnemar_exact(12, 2)) and c["significant"]
    assert c["difference_low"] < c["difference"] < c["difference_high"]


def test_a_change_that_mcnemar_cannot_tell_from_chance_is_not_significant():
    a = answers([True] * 5 + [False] * 35)
    b = answers([False] * 2 + [True] * 3 + [True] * 5 + [False] * 30)  # 5 gained, 2 lost
    c = paired_difference(a, b)
    assert c["difference"] > 0 and not c["significant"] and c["p_value"] > 0.05


def test_the_same_answers_differ_by_nothing():
    a = answers([True, False, True])
    c = paired_difference(a, a)
    assert (c["difference"], c["gained"], c["lost"], c["p_value"], c["significant"]) == (0, 0, 0, 1.0, False)


def test_answers_to_different_prompts_are_refused_naming_where():
    a, b = answers([True, False]), answers([True, False, True])
    with pytest.raises(UnpairedAnswers, match=r"here eval: .*0 only in the first, 1 only in the second"):
        compare_answers(a, b, ["eval"], "here")


def eval_rows(rows: list[dict]) -> list[dict]:
    return [{**dict.fromkeys(EVAL_RESULT.names), "strict": [], "loose": [], "instruction_ids": [], **r} for r in rows]


def test_compare_command_prints_each_set_from_iterations_or_folders(tmp_path, monkeypatch, capsys):
    write_params(tmp_path, "unused")
    monkeypatch.chdir(tmp_path)
    base = answers([True] * 5 + [False] * 35) + answers([False] * 40, "eval_ood")
    later = answers([True] * 25 + [False] * 15) + answers([False] * 39 + [True], "eval_ood")
    write_shards(tmp_path, "iter-000", eval_rows(base), folder="evals", schema=EVAL_RESULT)
    write_shards(tmp_path, "elsewhere", eval_rows(later), folder="evals", schema=EVAL_RESULT)
    assert cli.main(["compare", "0", "data/evals/elsewhere"]) == 0
    table = capsys.readouterr().out
    assert "| eval | 40 | 12.5 | 62.5 | +50.0" in table and table.count("| yes |") == 1
    assert "| eval_ood | 40 | 0.0 | 2.5 | +2.5" in table
    assert cli.main(["compare", "0", "7"]) == 2
    assert "data/evals/iter-007: no eval answers" in capsys.readouterr().err
