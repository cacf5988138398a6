import json

from transforms.judges.ifeval_verifier import verify


def ids_kwargs(*pairs):
    return [p[0] for p in pairs], [json.dumps(p[1]) for p in pairs]


def test_all_followed_passes():
    ids, kw = ids_kwargs(("change_case:english_lowercase", {}), ("punctuation:no_comma", {}),
                         ("length_constraints:number_words", {"relation": "less than", "num_words": 20}))
    verdict = verify("the cat sat on the warm mat and looked at the garden", ids, kw, "p")
    assert verdict.strict == (True, True, True) and verdict.passed and verdict.score == 1.0


def test_partial_and_loose():
    ids, kw = ids_kwargs(("punctuation:no_comma", {}), ("detectable_format:title", {}))
    verdict = verify("Hello, world", ids, kw, "p")
    assert verdict.strict == (False, False) and not verdict.passed and verdict.score == 0.0
    ids, kw = ids_kwargs(("startend:end_checker", {"end_phrase": "Any other questions?"}))
    assert verify("Sure thing. Any other questions?", ids, kw, "p").passed
    # Loose mode forgives a trailing line, as IFEval's loose accuracy does.
    verdict = verify("Sure thing. Any other questions?\nBye", ids, kw, "p")
    assert verdict.strict == (False,) and verdict.loose == (True,)


def test_empty_answer_fails_every_instruction():
    ids, kw = ids_kwargs(("punctuation:no_comma", {}), ("change_case:english_lowercase", {}))
    verdict = verify("  \n ", ids, kw, "p")
    assert verdict.strict == (False, False) and not verdict.passed and not verdict.error


def test_checker_failure_becomes_error_not_crash():
    verdict = verify("text", ["no:such"], ["{}"], "p")
    assert not verdict.passed and "unknown instruction id" in verdict.error
    verdict = verify("text", ["detectable_format:number_bullet_lists"], ['{"bullets": 2}'], "p")
    assert "bad kwargs" in verdict.error


def test_language_detection_is_deterministic():
    ids, kw = ids_kwargs(("change_case:english_lowercase", {}))
    text = "ok sure the big blue house"
    assert len({verify(text, ids, kw, "p") for _ in range(5)}) == 1
