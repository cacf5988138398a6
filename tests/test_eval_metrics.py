import pytest

from transforms.evaluation.metrics import (
    TooManyCheckerErrors,
    accuracies,
    per_instruction_type,
    refuse_if_errored,
    set_metrics,
)
from transforms.health.intervals import wilson


def test_prompt_and_instruction_levels():
    results = [
        {"strict": [True, True], "loose": [True, True], "error": None},
        {"strict": [True, False], "loose": [True, True], "error": None},
        {"strict": [False], "loose": [False], "error": None},
        {"strict": [], "loose": [], "error": None},  # a prompt without instructions never counts as followed
    ]
    m = accuracies(results)
    assert m["n_prompts"] == 4 and m["n_errors"] == 0
    assert m["prompt_level_strict_acc"] == pytest.approx(1 / 4)
    assert m["prompt_level_loose_acc"] == pytest.approx(2 / 4)
    assert m["inst_level_strict_acc"] == pytest.approx(3 / 5)
    assert m["inst_level_loose_acc"] == pytest.approx(4 / 5)


def test_a_check_that_raised_is_counted_and_not_followed():
    results = [{"strict": [True], "loose": [True], "error": None},
               {"strict": [False, False], "loose": [False, False], "error": "LookupError: nltk punkt not found"},
               {"strict": [False], "loose": [True], "error": ""}]  # "" is no error, as the verifier's Verdict has it
    m = accuracies(results)
    assert m["n_errors"] == 1
    assert m["prompt_level_strict_acc"] == pytest.approx(1 / 3) and m["inst_level_strict_acc"] == pytest.approx(1 / 4)


def test_no_results_is_an_error():
    with pytest.raises(ValueError):
        accuracies([])


def scores(**errors_of_100):
    return {split: {"n_prompts": 100, "n_errors": n} for split, n in errors_of_100.items()}


def test_errors_up_to_the_share_are_reported():
    refuse_if_errored(scores(eval=5, eval_ood=0), 0.05, "data/evals/iter-001")  # 5 of 100 is not above 5 %


def test_errors_above_the_share_refuse_naming_split_count_and_share():
    with pytest.raises(TooManyCheckerErrors) as err:
        refuse_if_errored(scores(eval=2, eval_ood=6), 0.05, "data/evals/iter-001")
    message = str(err.value)
    assert "eval_ood: 6 of 100 prompts (6.0%)" in message and "eval:" not in message
    assert "evaluate.max_error_share (5.0%)" in message and "data/evals/iter-001" in message


def test_every_split_over_the_share_is_named():
    with pytest.raises(TooManyCheckerErrors, match=r"eval: 1 of 100 prompts \(1.0%\); eval_ood: 100 of 100 prompts"):
        refuse_if_errored(scores(eval=1, eval_ood=100), 0.0, "x")


def test_a_set_of_your_own_counts_passed_answers_with_a_wilson_interval():
    answers = [{"passed": True, "error": None, "strict": [True], "loose": [True]},
               {"passed": False, "error": "RuntimeError: broke", "strict": [False], "loose": [False]},
               {"passed": False, "error": None, "strict": [False], "loose": [True]}]
    custom = set_metrics(answers, "mine")
    assert custom == {"judge": "mine", "n_prompts": 3, "n_passed": 1, "n_errors": 1, "accuracy": 1 / 3,
                      "accuracy_low": wilson(1, 3)[0], "accuracy_high": wilson(1, 3)[1]}
    verified = set_metrics(answers, "ifeval_verifier")  # IFEval's own four accuracies beside
    assert verified["prompt_level_loose_acc"] == 2 / 3 and verified["accuracy"] == verified["prompt_level_strict_acc"]
    with pytest.raises(ValueError, match="no evaluation results"):
        set_metrics([], "mine")


def test_every_accuracy_has_an_interval_around_it():
    results = [{"strict": [i % 3 == 0, True], "loose": [i % 2 == 0, True], "error": None} for i in range(60)]
    m = accuracies(results)
    assert (m["prompt_level_strict_acc_low"], m["prompt_level_strict_acc_high"]) == pytest.approx(wilson(20, 60))
    for key in ("prompt_level_strict_acc", "prompt_level_loose_acc", "inst_level_strict_acc", "inst_level_loose_acc"):
        assert 0 <= m[f"{key}_low"] < m[key] < m[f"{key}_high"] <= 1, key


def test_an_instruction_level_interval_resamples_prompts_not_instructions():
    # every prompt's 5 instructions all pass or all fail: 50 independent outcomes, not 250
    results = [{"strict": [i % 2 == 0] * 5, "loose": [i % 2 == 0] * 5, "error": None} for i in range(50)]
    m = accuracies(results)
    width = m["inst_level_strict_acc_high"] - m["inst_level_strict_acc_low"]
    low, high = wilson(125, 250)
    assert width > 1.5 * (high - low)  # as wide as 50 outcomes allow, much wider than 250 would give


def test_per_instruction_type_counts_each_type_with_its_interval():
    results = [{"instruction_ids": ["a", "b"], "strict": [True, False]},
               {"instruction_ids": ["a"], "strict": [False]},
               {"instruction_ids": ["b", "c"], "strict": [True, True]}]
    by_type = per_instruction_type(results)
    assert {t: (v["followed"], v["n"]) for t, v in by_type.items()} == {"a": (1, 2), "b": (1, 2), "c": (1, 1)}
    assert by_type["a"]["accuracy"] == 0.5 and (by_type["a"]["low"], by_type["a"]["high"]) == pytest.approx(wilson(1, 2))


def test_an_interval_holds_its_share_at_the_edges():
    for n in (6, 120, 500):
        assert wilson(0, n)[0] == 0.0 and wilson(n, n)[1] == 1.0
