"""Judges of your own (`judge.custom`): a function from the user's code is a first-class judge.

It is checked when params are read, runs in the judge stage beside the built-in judges, is calibrated,
can decide in curate, and every way it can fail on a candidate ends as a counted judge_error."""

import json
import shutil

import pytest

from pipelines import config as config_module
from pipelines.stages import curate, judge
from tests.stage_fixtures import chdir, write_params, write_prompt_sets
from tests.test_judge_stage import candidate, write_candidates
from transforms.io.parquet_io import read_rows
from transforms.judges.custom_judge import CustomJudgeConfig, custom_check, result_of
from transforms.settings import ConfigError

CHECKS = '''
def mentions_answer(prompt, response):
    """Passes when the answer names the prompt's reference answer; raises on a candidate saying BOOM."""
    if "BOOM" in response:
        raise RuntimeError("the checker broke")
    if "NAN" in response:
        return float("nan"), False, {}
    expected = prompt["metadata"]["answer"]
    found = expected in response
    return (1.0 if found else 0.0), found, {"expected": expected}


not_callable = 3
'''


def plain_prompt(pid, text, answer, split="train"):
    """A prompt without IFEval constraints, carrying its reference answer as metadata."""
    return {"prompt_id": pid, "messages": [{"role": "user", "content": text}], "instruction_ids": [], "kwargs": [],
            "source": "test", "split": split, "metadata": json.dumps({"answer": answer})}


TRAIN = [plain_prompt("t1", "What is 2 + 3?", "5"), plain_prompt("t2", "What is 4 + 4?", "8")]
CANDIDATES = [
    candidate("c1", TRAIN[0], "The answer is 5, since two and three make five together."),
    candidate("c2", TRAIN[0], "The answer is 6, since two and three make six together."),
    candidate("c3", TRAIN[1], "Four and four make 8, which is the answer to the sum."),
    candidate("c4", TRAIN[1], "BOOM goes the answer, which makes eight in the end here."),
    candidate("c5", TRAIN[1], "NAN is not a number and not the answer to the sum here."),
]


@pytest.fixture
def workdir(tmp_path, request, tiny_model_dir):
    shutil.copytree(tiny_model_dir, tmp_path / "models/base")
    module = f"checks_{request.node.name[:40].replace('[', '_').replace(']', '_')}"
    (tmp_path / f"{module}.py").write_text(CHECKS)
    write_params(tmp_path, "unused",
                 judge={"num_shards": 1, "heuristics": {"min_words": 1}, "llm_judge": {"enabled": False},
                        "custom": [{"name": "mentions_answer", "function": f"{module}:mentions_answer"}]},
                 curate={"num_shards": 1, "weights": {"ifeval_verifier": 0.0, "mentions_answer": 1.0}})
    write_prompt_sets(tmp_path, TRAIN, [plain_prompt("e1", "What is 1 + 1?", "2", "eval")],
                      [plain_prompt("o1", "What is 3 + 3?", "6", "eval_ood")])
    (tmp_path / "data/candidates/iter-001").mkdir(parents=True)
    write_candidates(tmp_path, CANDIDATES)
    with chdir(tmp_path):
        yield tmp_path, module


def load():
    return config_module.load("params.yaml")


def test_prompts_without_constraints_and_a_custom_verifier_give_a_corpus(workdir):
    judge.main(load(), "iter-001", [])
    judgments = {(j["candidate_id"], j["judge"]): j for j in read_rows("data/judgments/iter-001")}
    assert {name for _, name in judgments} >= {"ifeval_verifier", "mentions_answer"}
    verdicts = {cid: judgments[(cid, "mentions_answer")] for cid in ("c1", "c2", "c3", "c4", "c5")}
    assert [verdicts[c]["passed"] for c in ("c1", "c2", "c3")] == [True, False, True]
    assert "RuntimeError: the checker broke" in json.loads(verdicts["c4"]["detail"])["error"]
    assert "score nan" in json.loads(verdicts["c5"]["detail"])["error"]

    report = json.loads(open("reports/judges/iter-001.json").read())["judges"]
    assert report["mentions_answer"]["threshold"] is None  # it decides `passed` itself
    assert report["mentions_answer"]["excluded_unscored"] == 5  # no verifier label: prompts have no constraints

    manifest = curate.main(load(), "iter-001", [])
    kept = sorted(r["candidate_id"] for r in read_rows("data/shards/iter-001"))
    rejected = {r["candidate_id"]: r["reason"] for r in read_rows("data/rejected/iter-001")}
    assert kept == ["c1", "c3"]
    assert rejected == {"c2": "below_threshold", "c4": "judge_error", "c5": "judge_error"}
    assert manifest["rows_out"] == 2


def test_a_callable_that_cannot_be_imported_names_the_param(workdir):
    root, module = workdir
    for function, expected in ((f"{module}:missing", "has no callable 'missing'"),
                               (f"{module}:not_callable", "has no callable 'not_callable'"),
                               ("no_such_package.checks:f", "cannot import 'no_such_package.checks'"),
                               ("just_a_name", "must be written as package.module:callable")):
        write_params(root, "unused", judge={"custom": [{"name": "mine", "function": function}]})
        with pytest.raises(ConfigError) as raised:
            load()
        assert "judge.custom[0].function" in str(raised.value) and expected in str(raised.value)


def test_custom_judge_names_and_weights_are_checked(workdir):
    root, module = workdir
    function = f"{module}:mentions_answer"
    cases = [
        ({"custom": [{"name": "ifeval_verifier", "function": function}]}, {}, "is a built-in judge"),
        ({"custom": [{"name": "a", "function": function}, {"name": "a", "function": function}]}, {},
         "'a' is declared twice"),
        ({"custom": [{"name": "Has Space", "function": function}]}, {}, "must be lowercase letters"),
        ({"custom": []}, {"weights": {"mentions_answer": 1.0}}, "curate.weights: 'mentions_answer' is not one of"),
        ({"custom": [{"name": "a", "function": function}]}, {"allow_low_auc_judges": ["a"]},
         "curate.allow_low_auc_judges: 'a' is not one of llm_judge, reward_model"),  # the floor is for models
    ]
    for judge_section, curate_section, expected in cases:
        write_params(root, "unused", judge=judge_section, curate={"weights": {"ifeval_verifier": 1.0},
                                                                 **curate_section})
        with pytest.raises(ConfigError, match=expected):
            load()


def test_what_a_callable_returns_is_checked():
    assert result_of((0.25, False, {"why": "x"})).score == 0.25
    assert result_of((1, True)).passed is True
    for returned, expected in (((1.5, True, {}), "expected a number in [0, 1]"),
                               ((True, True, {}), "expected a number in [0, 1]"),
                               ((0.5, "yes", {}), "expected True or False"),
                               ((0.5, True, ["x"]), "expected a dict"),
                               ((0.5, True, {"x": object()}), "not JSON-serializable"),
                               (0.5, "returned float")):
        result = result_of(returned)
        assert expected in result.error and result.score == 0.0 and not result.passed


def test_the_shipped_example_verifier_runs_as_a_custom_judge():
    check = custom_check(CustomJudgeConfig("fields_match", "examples.json_extraction.verifier:fields_match"))
    prompt = {**plain_prompt("p", "Ann is 30 and lives in Rome. Reply with only a JSON object.", ""),
              "metadata": json.dumps({"expected": {"name": "Ann", "age": 30, "city": "Rome"}})}
    fenced = 'Here it is:\n```json\n{"name": "Ann", "age": "30", "city": "Rome"}\n```'
    assert check({"text": fenced}, prompt).passed
    wrong = check({"text": '{"name": "Ann", "age": 31, "city": "Rome"}'}, prompt)
    assert not wrong.passed and wrong.score == pytest.approx(2 / 3) and not wrong.error
    extra = check({"text": '{"name": "Ann", "age": 30, "city": "Rome", "job": "chef"}'}, prompt)
    assert extra.score == 1.0 and not extra.passed
    assert check({"text": "Ann, 30, Rome {not json}"}, prompt).score == 0.0
