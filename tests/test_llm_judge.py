import math

import pytest

from transforms.judges.llm_judge import RATINGS, expected_rating, rating_token_ids, rubric_messages


def test_certain_ratings_map_to_the_ends_of_the_scale():
    assert expected_rating([50.0, 0, 0, 0, 0])[0] == pytest.approx(0.0)
    assert expected_rating([0, 0, 0, 0, 50.0])[0] == pytest.approx(1.0)
    assert expected_rating([0, 0, 50.0, 0, 0])[0] == pytest.approx(0.5)


def test_uniform_logits_give_the_middle_and_probabilities_sum_to_one():
    score, probabilities = expected_rating([3.0] * 5)
    assert score == pytest.approx(0.5)
    assert probabilities == pytest.approx([0.2] * 5)


def test_expected_rating_matches_a_hand_computed_softmax():
    logits = [0.0, math.log(2), 0.0, 0.0, math.log(4)]  # weights 1, 2, 1, 1, 4 (sum 9)
    expected = (1 * 1 + 2 * 2 + 3 * 1 + 4 * 1 + 5 * 4) / 9
    score, probabilities = expected_rating(logits)
    assert probabilities == pytest.approx([1 / 9, 2 / 9, 1 / 9, 1 / 9, 4 / 9])
    assert score == pytest.approx((expected - 1) / 4)


def test_large_logits_do_not_overflow():
    score, _ = expected_rating([1000.0, 999.0, -1000.0, -1000.0, -1000.0])
    assert 0 <= score < 0.1


@pytest.mark.parametrize("bad", [[1.0, 2.0], [float("nan")] * 5, [float("inf"), 0, 0, 0, 0]])
def test_malformed_logits_are_refused(bad):
    with pytest.raises(ValueError):
        expected_rating(bad)


def test_rubric_holds_prompt_and_response_and_asks_for_one_digit():
    (message,) = rubric_messages("Write a haiku.", "Leaves fall")
    assert message["role"] == "user"
    assert "Write a haiku." in message["content"] and "Leaves fall" in message["content"]
    assert "single digit" in message["content"]


def test_rating_tokens_are_single_tokens_of_the_real_tokenizer():
    from transformers import AutoTokenizer

    from tests.tiny_model import TOKENIZER_FIXTURE

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_FIXTURE)
    ids = rating_token_ids(tokenizer)
    assert len(set(ids)) == len(RATINGS)
    assert [tokenizer.decode([i]) for i in ids] == list(RATINGS)
