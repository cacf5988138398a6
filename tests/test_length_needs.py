import json

from pipelines.config import EvaluateConfig, PromptsConfig
from transforms.prompts.length_needs import TOKENS_PER_WORD, over_budget, tokens_needed
from transforms.prompts.prompt_builder import build_split


def prompt(*constraints):
    return {"instruction_ids": [c[0] for c in constraints], "kwargs": [json.dumps(c[1]) for c in constraints]}


def test_only_a_lower_bound_on_length_needs_tokens():
    base = tokens_needed([], [])
    assert tokens_needed(["length_constraints:number_words"], [json.dumps({"relation": "less than", "num_words": 50})]) \
        == base == tokens_needed(["punctuation:no_comma"], ["{}"])
    assert tokens_needed(["length_constraints:number_words"], [json.dumps({"relation": "at least", "num_words": 300})]) \
        == base + 300 * TOKENS_PER_WORD


def test_the_longest_need_of_a_prompt_counts():
    p = prompt(("length_constraints:number_words", {"relation": "at least", "num_words": 30}),
               ("length_constraints:number_sentences", {"relation": "at least", "num_sentences": 10}))
    assert tokens_needed(p["instruction_ids"], p["kwargs"]) == tokens_needed(*prompt(
        ("length_constraints:number_sentences", {"relation": "at least", "num_sentences": 10})).values())
    long = prompt(("length_constraints:number_words", {"relation": "at least", "num_words": 300}))
    assert over_budget([p, long], 160) == [long]


def test_the_default_eval_budget_can_satisfy_every_built_in_eval_prompt():
    sizes = PromptsConfig()
    for split, n in (("eval", sizes.eval_size), ("eval_ood", sizes.eval_ood_size)):
        assert over_budget(build_split(split, n, sizes.seed, sizes.max_constraints), EvaluateConfig().max_new_tokens) == []
