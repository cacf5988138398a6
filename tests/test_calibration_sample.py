"""The calibration sample of a judge model that does not decide: stratified by the verifier's verdict, a pure
function of the candidates and the seed, and only for judges of weight 0."""

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from transforms.judges.calibration_sample import (
    FAILED,
    PASSED,
    UNLABELED,
    CalibrationSample,
    allocate,
    priority,
    stratum,
)
from transforms.judges.contract import JudgeResult

RANKED = {PASSED: ["p1", "p2", "p3"], FAILED: [f"f{i}" for i in range(10)], UNLABELED: ["u1", "u2"]}


def test_half_from_each_verdict_in_priority_order():
    assert allocate(RANKED, 4) == {PASSED: ["p1", "p2"], FAILED: ["f0", "f1"], UNLABELED: []}
    assert allocate(RANKED, 5) == {PASSED: ["p1", "p2", "p3"], FAILED: ["f0", "f1"], UNLABELED: []}


def test_a_short_class_leaves_its_share_to_the_other_then_to_the_unlabeled():
    assert allocate(RANKED, 8) == {PASSED: ["p1", "p2", "p3"], FAILED: [f"f{i}" for i in range(5)], UNLABELED: []}
    whole = allocate(RANKED, 100)
    assert whole[PASSED] == RANKED[PASSED] and whole[FAILED] == RANKED[FAILED] and whole[UNLABELED] == ["u1", "u2"]
    assert allocate({UNLABELED: ["u1", "u2", "u3"]}, 2) == {PASSED: [], FAILED: [], UNLABELED: ["u1", "u2"]}


def _verify(candidate, prompt):
    if candidate["text"] == "broken":
        return JudgeResult.failed("checker raised")
    return JudgeResult(1.0, True) if candidate["text"] == "good" else JudgeResult(0.0, False)


PROMPTS = {"a": {"instruction_ids": ["x"]}, "free": {"instruction_ids": []}}


def test_strata_follow_the_verifier_and_its_labels():
    assert stratum({"prompt_id": "a", "text": "good"}, PROMPTS.get("a"), _verify) == PASSED
    assert stratum({"prompt_id": "a", "text": "bad"}, PROMPTS.get("a"), _verify) == FAILED
    assert stratum({"prompt_id": "a", "text": "broken"}, PROMPTS.get("a"), _verify) == UNLABELED
    assert stratum({"prompt_id": "free", "text": "good"}, PROMPTS.get("free"), _verify) == UNLABELED  # nothing to verify
    assert stratum({"prompt_id": "gone", "text": "good"}, PROMPTS.get("gone"), _verify) == UNLABELED


def _candidates():
    return ([{"candidate_id": f"g{i}", "prompt_id": "a", "text": "good"} for i in range(6)]
            + [{"candidate_id": f"b{i}", "prompt_id": "a", "text": "bad"} for i in range(30)]
            + [{"candidate_id": f"u{i}", "prompt_id": "free", "text": "good"} for i in range(5)])


def _expected(candidates, sizes, seed):
    """What the sample must be: each stratum's ids by seeded priority, allocated per size."""
    ranked = {}
    for c in sorted(candidates, key=lambda c: priority(c["candidate_id"], seed)):
        ranked.setdefault(stratum(c, PROMPTS.get(c["prompt_id"]), _verify), []).append(c["candidate_id"])
    return {size: sorted(i for ids in allocate(ranked, size).values() for i in ids) for size in sizes}


def _check_sample(candidates, sizes, seed, expected):
    with beam.Pipeline() as p:
        out = (p | beam.Create([(c, PROMPTS.get(c["prompt_id"])) for c in candidates])
               | CalibrationSample(sizes, _verify, seed))
        assert_that(out | beam.Map(lambda samples: {size: sorted(ids) for size, ids in samples.items()}),
                    equal_to([expected]))


@pytest.mark.parametrize("seed", [0, 7])
def test_the_sample_is_stratified_nested_and_independent_of_input_order(seed):
    candidates = _candidates()
    expected = _expected(candidates, [8, 20], seed)
    small, large = set(expected[8]), set(expected[20])
    assert sum(c.startswith("g") for c in small) == 4 and sum(c.startswith("b") for c in small) == 4
    assert sum(c.startswith("g") for c in large) == 6 and sum(c.startswith("b") for c in large) == 14
    assert not any(c.startswith("u") for c in large)  # labeled candidates were enough
    assert small <= large
    _check_sample(candidates, [8, 20], seed, expected)
    _check_sample(list(reversed(candidates)), [20, 8], seed, expected)


def test_another_seed_draws_another_sample():
    assert _expected(_candidates(), [8], 0) != _expected(_candidates(), [8], 1)


def test_no_candidates_give_an_empty_sample():
    _check_sample([], [8], 0, {8: []})
