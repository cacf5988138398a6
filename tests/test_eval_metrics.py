import pytest

from transforms.judges.eval_metrics import accuracies


def test_prompt_and_instruction_levels():
    results = [
        {"strict": [True, True], "loose": [True, True]},
        {"strict": [True, False], "loose": [True, True]},
        {"strict": [False], "loose": [False]},
        {"strict": [], "loose": []},  # a prompt without instructions never counts as followed
    ]
    m = accuracies(results)
    assert m["n_prompts"] == 4
    assert m["prompt_level_strict_acc"] == pytest.approx(1 / 4)
    assert m["prompt_level_loose_acc"] == pytest.approx(2 / 4)
    assert m["inst_level_strict_acc"] == pytest.approx(3 / 5)
    assert m["inst_level_loose_acc"] == pytest.approx(4 / 5)


def test_no_results_is_an_error():
    with pytest.raises(ValueError):
        accuracies([])
