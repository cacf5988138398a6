"""Health metrics on hand-made answers: each check fires on the answer made for it and not on a clean one."""

from __future__ import annotations

import pytest

from transforms.health.answer_checks import (
    detected_language,
    expected_language,
    is_refusal,
    stray_quote_paragraphs,
    template_markup,
    unbalanced_pairs,
)
from transforms.health.intervals import mcnemar_exact, wilson
from transforms.health.metrics import HEALTH_METRICS, answer_flags, health
from transforms.judges.heuristics import HeuristicsConfig

CLEAN = ("Bees gather nectar from many flowers across the meadow. They carry it back to the hive, "
         "where workers turn it into honey (a store of food for the winter).")
STRAY = 'Here is my note.\n\n"I hope this finds you well and that the garden is growing nicely this spring.'
WRAPPED = '"The whole answer sits inside quotation marks, as the prompt asked.\n\nIt ends here."'
REPETITIVE = "The weather today is sunny and the children are playing in the park. " * 10
GERMAN = ("Die Bienen sammeln den Nektar von vielen Blumen auf der Wiese und bringen ihn zurück in den Stock, "
          "wo die Arbeiterinnen daraus Honig für den Winter machen.")
HEURISTICS = HeuristicsConfig()


def row(prompt_id: str, text: str, tokens: int = 30, finish: str = "stop", ids=("punctuation:no_comma",),
        language: str | None = None) -> dict:
    return {"prompt_id": prompt_id, "text": text, "completion_tokens": tokens, "finish_reason": finish,
            "instruction_ids": list(ids), "expected_language": "en",
            "language": detected_language(text) if language is None and text.strip() else (language or "")}


def test_a_paragraph_opening_on_an_unclosed_quote_is_stray_unless_the_prompt_asked_for_wrapping():
    assert stray_quote_paragraphs(STRAY) == 1
    assert stray_quote_paragraphs(CLEAN) == 0
    assert stray_quote_paragraphs('"Quoted," she said.\n"Closed too."') == 0
    assert stray_quote_paragraphs(WRAPPED, ["startend:quotation"]) == 0
    assert stray_quote_paragraphs(WRAPPED) == 1  # not asked for: the opening quote is stray
    assert stray_quote_paragraphs('```json\n{"a":\n"b"\n```') == 0  # code is not prose


def test_unbalanced_quotes_and_brackets():
    assert not unbalanced_pairs(CLEAN)
    assert unbalanced_pairs('He said "yes and left.')
    assert unbalanced_pairs("a list (of things")
    assert unbalanced_pairs("closed ] before opened [")
    assert not unbalanced_pairs('nested ([{"ok"}]) fine')


def test_template_markup_refusals_and_language():
    assert template_markup("Sure!<|im_end|>") and template_markup("text\nassistant\nmore")
    assert not template_markup("The assistant manager said hello.")
    assert is_refusal("I'm sorry, but I cannot help with that.") and not is_refusal("Sorry state of affairs, they said.")
    assert detected_language(GERMAN) == "de" and detected_language(CLEAN) == "en"
    assert expected_language(["language:response_language", "punctuation:no_comma"], [{"language": "fr"}, {}]) == "fr"
    assert expected_language(["punctuation:no_comma"], [{}]) == "en"


def test_each_flag_fires_on_its_answer_only():
    flags = {name: answer_flags(r, HEURISTICS) for name, r in {
        "clean": row("p0", CLEAN), "stray": row("p1", STRAY), "repetitive": row("p2", REPETITIVE),
        "empty": row("p3", "   "), "german": row("p4", GERMAN), "cut": row("p5", "An answer (cut off", finish="length"),
        "open": row("p6", "An answer (never closed."),
    }.items()}
    raised = {name: sorted(k for k, v in f.items() if v) for name, f in flags.items()}
    assert raised == {"clean": [], "stray": ["stray_quote", "unbalanced"], "repetitive": ["repetitive"], "empty": ["empty"],
                      "german": ["wrong_language"], "cut": ["hit_budget"], "open": ["unbalanced"]}


def test_levels_with_wilson_intervals():
    rows = [row(f"p{i}", CLEAN, tokens=10 * (i + 1)) for i in range(8)] + [row("p8", STRAY, 100), row("p9", "", 0)]
    metrics = health(rows, HEURISTICS)
    assert metrics["n_answers"] == 10 and set(metrics) == {"n_answers"} | {m.name for m in HEALTH_METRICS}
    assert metrics["stray_quote"]["value"] == 0.1 and metrics["empty"]["value"] == 0.1
    low, high = wilson(1, 10)
    assert metrics["stray_quote"]["low"] == round(low, 4) and metrics["stray_quote"]["high"] == round(high, 4)
    assert 0 < low < 0.1 < high < 0.5
    assert metrics["length_mean"]["value"] == pytest.approx((sum(range(10, 90, 10)) + 100) / 10)
    assert "low" not in metrics["length_mean"] and "delta" not in metrics["length_mean"]


def test_distinct_n_falls_when_answers_repeat_each_other():
    varied = [row(f"p{i}", f"answer number {i} talks about topic {i} with its own words {i * 7}") for i in range(20)]
    same = [row(f"p{i}", "every answer says exactly the same thing here") for i in range(20)]
    assert health(varied, HEURISTICS)["distinct_2"]["value"] > 3 * health(same, HEURISTICS)["distinct_2"]["value"]


def test_changes_against_the_base_are_paired_and_flag_only_real_moves():
    base = [row(f"p{i:02d}", CLEAN, tokens=100) for i in range(60)]
    shorter_and_quoted = [row(f"p{i:02d}", STRAY if i % 2 else CLEAN, tokens=50) for i in range(60)]
    moved = health(shorter_and_quoted, HEURISTICS, base)
    assert moved["length_mean"]["delta"] == -50 and moved["length_mean"]["moved"]
    assert moved["stray_quote"]["delta"] == 0.5 and moved["stray_quote"]["delta_low"] > 0 and moved["stray_quote"]["moved"]
    assert moved["empty"]["delta"] == 0 and not moved["empty"]["moved"]
    same = health(base, HEURISTICS, base)
    assert not any(same[m.name]["moved"] for m in HEALTH_METRICS)
    one_more = health([row("p00", STRAY, 100)] + base[1:], HEURISTICS, base)
    assert one_more["stray_quote"]["delta"] == pytest.approx(1 / 60, abs=1e-4) and not one_more["stray_quote"]["moved"]
    # 4 answers gain the artifact, none loses it: the bootstrap interval clears 0, McNemar (p = 0.125) does not
    four_more = health([row(f"p{i:02d}", STRAY, 100) for i in range(4)] + base[4:], HEURISTICS, base)["stray_quote"]
    assert four_more["delta_low"] > 0 and four_more["p_value"] == 0.125 and not four_more["moved"]
    assert moved["stray_quote"]["p_value"] < 1e-6


def test_no_common_prompt_with_the_base_is_an_error():
    with pytest.raises(ValueError, match="share no prompt"):
        health([row("a", CLEAN)], HEURISTICS, [row("b", CLEAN)])


def test_every_change_lies_inside_its_interval_even_for_corpus_level_ratios():
    """Resampling repeats answers, which lowers distinct-n in every bootstrap sample; the interval
    must still be around the measured change, not beside it."""
    varied = [row(f"p{i:02d}", f"answer {i} speaks of topic {i} in words {i * 7} and {i * 11} only") for i in range(40)]
    same = [row(f"p{i:02d}", "every answer says exactly the same thing here") for i in range(40)]
    changes = health(same, HEURISTICS, varied)
    for metric in HEALTH_METRICS:
        entry = changes[metric.name]
        assert entry["delta_low"] <= entry["delta"] <= entry["delta_high"], (metric.name, entry)
    assert changes["distinct_2"]["delta"] < 0 and changes["distinct_2"]["moved"]


def test_mcnemar_exact_against_the_binomial():
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(1, 0) == 1.0
    assert mcnemar_exact(3, 0) == pytest.approx(0.25) and mcnemar_exact(0, 3) == pytest.approx(0.25)
    assert mcnemar_exact(6, 0) == pytest.approx(2 / 64)
    assert mcnemar_exact(8, 2) == pytest.approx(2 * (1 + 10 + 45) / 1024)
