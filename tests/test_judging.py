import dataclasses
import json

import pytest

from transforms.judges.config import JudgeConfig
from transforms.judges.contract import judgment_error
from transforms.judges.heuristics import HeuristicsConfig, prompt_echo_share, repeated_ngram_share
from transforms.judges.ifeval_verifier import VerifierConfig
from transforms.judges.registry import HEURISTICS
from transforms.judges.rules import enabled_checks, rule_judgments

PROMPTS = {"p1": {"prompt_id": "p1", "messages": [{"role": "user", "content": "Say hi to the owls. No commas."}],
                  "instruction_ids": ["punctuation:no_comma"], "kwargs": ["{}"]}}
DEFAULTS = HeuristicsConfig(min_words=1)


def checks(heuristics=DEFAULTS, threshold=1.0):
    """Every rule and heuristic judge, as the judge stage builds them."""
    return enabled_checks(JudgeConfig(verifier=VerifierConfig(threshold), heuristics=heuristics))


def judge(text, finish="stop", config=DEFAULTS, threshold=1.0):
    candidate = {"candidate_id": "c1", "prompt_id": "p1", "text": text, "finish_reason": finish}
    return {j["judge"]: j for j in rule_judgments(candidate, PROMPTS.get(candidate["prompt_id"]), checks(config, threshold))}


def test_verifier_and_every_heuristic_judge_each_candidate():
    out = judge("hi there little owls")
    assert list(out) == ["ifeval_verifier"] + [h.name for h in HEURISTICS]
    v = out["ifeval_verifier"]
    assert v["passed"] and v["score"] == 1.0
    assert json.loads(v["detail"]) == {"instruction_ids": ["punctuation:no_comma"], "strict": [True], "loose": [True]}
    assert all(j["passed"] and 0 <= j["score"] <= 1 and judgment_error(j) == "" for j in out.values())


def test_missing_prompt_is_an_error_judgment():
    candidate = {"candidate_id": "c1", "prompt_id": "nope", "text": "hi", "finish_reason": "stop"}
    judgments = rule_judgments(candidate, PROMPTS.get(candidate["prompt_id"]), checks())
    assert [j["judge"] for j in judgments] == ["ifeval_verifier"] + [h.name for h in HEURISTICS]
    assert all(not j["passed"] and judgment_error(j) == "prompt nope not found" for j in judgments)


@pytest.mark.parametrize("text, finish, failing", [
    ("", "stop", "heuristic_empty"),
    ("Say hi to the owls. No commas.", "stop", "heuristic_echo"),
    ("hi owls and bats and", "length", "heuristic_truncation"),
    ("buy now " * 30, "stop", "heuristic_repetition"),
])
def test_each_heuristic_fails_its_case(text, finish, failing):
    out = judge(text, finish)
    assert not out[failing]["passed"]
    assert all(j["passed"] for name, j in out.items() if name.startswith("heuristic_") and name != failing
               and not (failing == "heuristic_empty" and name in ("heuristic_length",)))


def test_length_bounds_and_truncation_switch():
    config = HeuristicsConfig(min_words=3, max_words=5, drop_truncated=False)
    assert not judge("two words", config=config)["heuristic_length"]["passed"]
    assert not judge("one two three four five six", config=config)["heuristic_length"]["passed"]
    assert judge("one two three four", config=config)["heuristic_length"]["passed"]
    truncated = judge("one two three four", "length", config=config)["heuristic_truncation"]
    assert truncated["passed"] and truncated["score"] == 0.0  # recorded, but not a failure when allowed


def test_repetition_and_echo_shares():
    assert repeated_ngram_share("a b c a b c", 3) == pytest.approx(1 / 4)
    assert repeated_ngram_share("one two", 3) == 0.0
    assert prompt_echo_share("Say hi to the owls", "say HI to the owls please") == 1.0
    assert prompt_echo_share("owls are lovely birds of the night", "say hi to the owls") == 0.0


def test_verifier_threshold_sets_passed():
    prompts = {"p1": {**PROMPTS["p1"], "instruction_ids": ["punctuation:no_comma", "change_case:english_lowercase"],
                      "kwargs": ["{}", "{}"]}}
    candidate = {"candidate_id": "c1", "prompt_id": "p1", "text": "Hi owls", "finish_reason": "stop"}
    (v, *_), = [rule_judgments(candidate, prompts["p1"], checks(threshold=0.5))]
    assert v["score"] == 0.5 and v["passed"]
    (v, *_), = [rule_judgments(candidate, prompts["p1"], checks(threshold=1.0))]
    assert not v["passed"]


def test_artifact_heuristics_are_recorded_always_and_reject_only_when_switched_on():
    stray = 'Hi owls at night.\n\n"And the bats fly over the barn'
    recorded = judge(stray)
    assert recorded["heuristic_stray_quote"]["score"] == 0.0 and recorded["heuristic_stray_quote"]["passed"]
    assert recorded["heuristic_unbalanced"]["score"] == 0.0 and recorded["heuristic_unbalanced"]["passed"]
    on = HeuristicsConfig(min_words=1, reject_artifacts=True)
    strict = judge(stray, config=on)
    assert not strict["heuristic_stray_quote"]["passed"] and not strict["heuristic_unbalanced"]["passed"]
    assert strict["heuristic_template_markup"]["passed"]
    assert not judge("Hi owls<|im_end|>", config=on)["heuristic_template_markup"]["passed"]
    cut = judge("Hi owls (and", "length", config=dataclasses.replace(on, drop_truncated=False))
    assert cut["heuristic_unbalanced"]["passed"]  # the token budget cut it, not the model
