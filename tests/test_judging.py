import json

from transforms.judging import judge_candidate, judgment_error

PROMPTS = {"p1": {"prompt_id": "p1", "messages": [{"role": "user", "content": "Say hi. No commas."}],
                  "instruction_ids": ["punctuation:no_comma"], "kwargs": ["{}"]}}


def test_judgment_records_per_instruction_detail():
    j = judge_candidate({"candidate_id": "c1", "prompt_id": "p1", "text": "hi there"}, PROMPTS)
    assert j["passed"] and j["score"] == 1.0 and j["judge"] == "ifeval_verifier"
    assert json.loads(j["detail"]) == {"instruction_ids": ["punctuation:no_comma"], "strict": [True], "loose": [True]}
    assert judgment_error(j) == ""


def test_missing_prompt_is_an_error_judgment():
    j = judge_candidate({"candidate_id": "c1", "prompt_id": "nope", "text": "hi"}, PROMPTS)
    assert not j["passed"] and "not found" in judgment_error(j)
