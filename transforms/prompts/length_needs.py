"""How many new tokens an answer needs at least to satisfy a prompt's length constraints: an eval budget
below that scores the budget, not the model. An estimate from the official IFEval length instructions'
kwargs; other instructions ask for no length."""

from __future__ import annotations

import json
import math

TOKENS_PER_WORD = 1.5  # English under a BPE tokenizer takes ~1.3; a margin on top
WORDS_PER_SENTENCE = 8  # a short sentence
WORDS_PER_PARAGRAPH = 2 * WORDS_PER_SENTENCE
MARKUP_TOKENS = 16  # a title, a postscript, separators


def _lower_bound(kwargs: dict, count: str, relation: str = "relation") -> int:
    """The count an "at least" (or "exactly") relation asks for; 0 for "less than"."""
    return 0 if kwargs.get(relation) == "less than" else int(kwargs.get(count) or 0)


WORDS_NEEDED = {
    "length_constraints:number_words": lambda kw: _lower_bound(kw, "num_words"),
    "length_constraints:number_sentences": lambda kw: WORDS_PER_SENTENCE * _lower_bound(kw, "num_sentences"),
    "length_constraints:number_paragraphs": lambda kw: WORDS_PER_PARAGRAPH * int(kw.get("num_paragraphs") or 0),
    "length_constraints:nth_paragraph_first_word": lambda kw: WORDS_PER_PARAGRAPH * int(kw.get("num_paragraphs") or 0),
    "detectable_format:multiple_sections": lambda kw: WORDS_PER_PARAGRAPH * int(kw.get("num_sections") or 0),
    "detectable_format:number_bullet_lists": lambda kw: WORDS_PER_SENTENCE * int(kw.get("num_bullets") or 0),
    "detectable_format:number_highlighted_sections": lambda kw: 4 * int(kw.get("num_highlights") or 0),
    "keywords:frequency": lambda kw: _lower_bound(kw, "frequency"),
}


def tokens_needed(instruction_ids: list[str], kwargs: list[str]) -> int:
    """The fewest new tokens that could satisfy every length instruction of a prompt (kwargs: JSON strings)."""
    words = [WORDS_NEEDED[i](json.loads(kw) if kw else {}) for i, kw in zip(instruction_ids, kwargs, strict=True)
             if i in WORDS_NEEDED]
    return math.ceil(max(words, default=0) * TOKENS_PER_WORD) + MARKUP_TOKENS


def over_budget(prompts: list[dict], max_new_tokens: int) -> list[dict]:
    """The prompts whose length instructions need more than `max_new_tokens`."""
    return [p for p in prompts if tokens_needed(p["instruction_ids"], p["kwargs"]) > max_new_tokens]
