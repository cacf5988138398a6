"""The verifiable instructions the default task draws from.

Each type maps to an official IFEval checker id (checked by `transforms.judges.ifeval_verifier`), a sampler
for its kwargs, and wordings. Wordings are split: `train` ones appear in the train and eval sets,
`ood` ones only in eval_ood, so eval_ood measures whether the model learned the instruction rather
than one sentence. Types with `ood_only=True` never appear in training at all.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

Kwargs = dict
Sampler = Callable[[random.Random], Kwargs]

KEYWORD_POOL = (
    "balance", "history", "simple", "future", "energy", "community", "practice", "morning",
    "network", "quality", "garden", "journey", "signal", "budget", "pattern", "window",
)
FORBIDDEN_POOL = ("very", "really", "thing", "good", "also", "just", "important", "many")
_END_PHRASES = ("Is there anything else I can help with?", "Any other questions?", "That is all.")
_LETTERS = "aeinorst"


@dataclass(frozen=True)
class InstructionType:
    instruction_id: str
    sample_kwargs: Sampler
    train_wordings: tuple[str, ...]
    ood_wordings: tuple[str, ...]
    ood_only: bool = False
    conflicts: frozenset[str] = field(default_factory=frozenset)

    def wordings(self, split: str) -> tuple[str, ...]:
        return self.ood_wordings if split == "eval_ood" else self.train_wordings


def _no_kwargs(_: random.Random) -> Kwargs:
    return {}


def _word_bounds(rng: random.Random) -> Kwargs:
    if rng.random() < 0.5:
        return {"relation": "less than", "num_words": rng.choice([40, 50, 60, 80])}
    return {"relation": "at least", "num_words": rng.choice([20, 30, 40])}


def _keywords(rng: random.Random) -> Kwargs:
    return {"keywords": rng.sample(KEYWORD_POOL, k=rng.choice([1, 2]))}


def _keyword_frequency(rng: random.Random) -> Kwargs:
    return {"keyword": rng.choice(KEYWORD_POOL), "frequency": rng.choice([2, 3]), "relation": "at least"}


def _forbidden(rng: random.Random) -> Kwargs:
    return {"forbidden_words": rng.sample(FORBIDDEN_POOL, k=2)}


def _end_phrase(rng: random.Random) -> Kwargs:
    return {"end_phrase": rng.choice(_END_PHRASES)}


def _bullets(rng: random.Random) -> Kwargs:
    return {"num_bullets": rng.choice([2, 3, 4])}


def _sections(rng: random.Random) -> Kwargs:
    return {"section_spliter": rng.choice(["Section", "SECTION"]), "num_sections": rng.choice([2, 3])}


def _postscript(rng: random.Random) -> Kwargs:
    return {"postscript_marker": rng.choice(["P.S.", "P.P.S"])}


def _placeholders(rng: random.Random) -> Kwargs:
    return {"num_placeholders": rng.choice([1, 2, 3])}


def _highlights(rng: random.Random) -> Kwargs:
    return {"num_highlights": rng.choice([1, 2, 3])}


def _letter_frequency(rng: random.Random) -> Kwargs:
    return {"letter": rng.choice(_LETTERS), "let_frequency": rng.choice([3, 5]), "let_relation": "at least"}


def _paragraphs(rng: random.Random) -> Kwargs:
    return {"num_paragraphs": rng.choice([2, 3])}


def _join(words: list[str]) -> str:
    quoted = [f'"{w}"' for w in words]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


CATALOG: tuple[InstructionType, ...] = (
    InstructionType(
        "change_case:english_lowercase", _no_kwargs,
        ("Your entire response should be in English, and in all lowercase letters. No capital letters are allowed.",
         "Write your whole answer in lowercase letters only.",
         "Do not use any capital letters anywhere in your reply."),
        ("Make sure not a single uppercase character appears in what you write.",),
        conflicts=frozenset({"change_case:english_capital", "detectable_format:title",
                             "detectable_format:multiple_sections", "detectable_content:postscript",
                             "startend:end_checker"}),
    ),
    InstructionType(
        "change_case:english_capital", _no_kwargs,
        ("Your entire response should be in English, and in all capital letters.",
         "Write your whole answer in CAPITAL LETTERS only.",
         "Respond using uppercase letters for every word."),
        ("Every letter you type must be an uppercase letter.",),
        conflicts=frozenset({"detectable_format:multiple_sections", "startend:end_checker",
                             "detectable_content:postscript", "detectable_format:json_format"}),
    ),
    InstructionType(
        "length_constraints:number_words", _word_bounds,
        ("Answer with {relation} {num_words} words.",
         "Your response should contain {relation} {num_words} words.",
         "Keep the length to {relation} {num_words} words."),
        ("The word count of your reply must be {relation} {num_words}.",),
    ),
    InstructionType(
        "keywords:existence", _keywords,
        ("Include the keywords {keywords_text} in your response.",
         "Make sure to use the words {keywords_text}.",
         "Your answer must mention {keywords_text}."),
        ("Somewhere in the text, work in the terms {keywords_text}.",),
    ),
    InstructionType(
        "keywords:frequency", _keyword_frequency,
        ("In your response, the word \"{keyword}\" should appear {relation} {frequency} times.",
         "Use the word \"{keyword}\" {relation} {frequency} times.",
         "Repeat the word \"{keyword}\" {relation} {frequency} times in your answer."),
        ("The term \"{keyword}\" has to show up {relation} {frequency} times.",),
    ),
    InstructionType(
        "keywords:forbidden_words", _forbidden,
        ("Do not include the words {forbidden_text} in the response.",
         "Avoid using the words {forbidden_text}.",
         "Never use the words {forbidden_text} in your answer."),
        ("The words {forbidden_text} are banned from your reply.",),
    ),
    InstructionType(
        "startend:end_checker", _end_phrase,
        ("Finish your response with this exact phrase: {end_phrase}",
         "End your answer with the exact words \"{end_phrase}\" and nothing after them.",
         "The last words of your reply must be: {end_phrase}"),
        ("Close with the precise sentence \"{end_phrase}\", with no text following it.",),
        conflicts=frozenset({"detectable_content:postscript", "detectable_format:json_format",
                             "startend:quotation"}),
    ),
    InstructionType(
        "detectable_format:number_bullet_lists", _bullets,
        ("Your answer must contain exactly {num_bullets} bullet points. Use the markdown bullet points such as:\n"
         "* This is point 1.",
         "Give exactly {num_bullets} bullet points, each starting with \"* \".",
         "Format your answer as a list of exactly {num_bullets} markdown bullets (\"* item\")."),
        ("Write precisely {num_bullets} items, every one on its own line beginning with an asterisk and a space.",),
        conflicts=frozenset({"detectable_format:json_format", "detectable_format:multiple_sections"}),
    ),
    InstructionType(
        "punctuation:no_comma", _no_kwargs,
        ("In your entire response, refrain from the use of any commas.",
         "Do not use any commas in your answer.",
         "Write your reply without a single comma."),
        ("Leave out every comma character from your text.",),
    ),
    InstructionType(
        "detectable_format:json_format", _no_kwargs,
        ("Entire output should be wrapped in JSON format.",
         "Return your whole answer as valid JSON.",
         "Format your entire response as a JSON object."),
        ("Your output must parse as JSON from start to finish.",),
        conflicts=frozenset({"detectable_format:title", "detectable_content:postscript",
                             "startend:quotation", "detectable_format:multiple_sections",
                             "detectable_format:number_highlighted_sections",
                             "detectable_content:number_placeholders"}),
    ),
    InstructionType(
        "detectable_format:multiple_sections", _sections,
        ("Your response must have {num_sections} sections. Mark the beginning of each section with {section_spliter} X, "
         "such as: {section_spliter} 1.",
         "Split your answer into {num_sections} parts, each starting with \"{section_spliter} N\" where N is its number.",
         "Organise the reply in {num_sections} sections labelled {section_spliter} 1, {section_spliter} 2 and so on."),
        ("Break what you write into {num_sections} numbered blocks, each headed \"{section_spliter}\" followed by its number.",),
    ),
    InstructionType(
        "detectable_content:postscript", _postscript,
        ("At the end of your response, please explicitly add a postscript starting with {postscript_marker}",
         "Add a postscript at the end that begins with \"{postscript_marker}\".",
         "Finish with a short note that starts with {postscript_marker}"),
        ("After the main answer, append an afterthought introduced by \"{postscript_marker}\".",),
    ),
    InstructionType(
        "detectable_format:title", _no_kwargs,
        ("Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
         "Start with a title inside double angle brackets, like <<my title>>.",
         "Give your answer a title written as <<title>>."),
        ("Put a heading at the top enclosed in << and >>.",),
    ),
    InstructionType(
        "startend:quotation", _no_kwargs,
        ("Wrap your entire response with double quotation marks.",
         "Put your whole answer inside double quotes.",
         "Your reply must start and end with a double quotation mark."),
        ("Enclose everything you write in a single pair of \" characters.",),
    ),
    # Never seen in training: eval_ood measures whether instruction following transfers.
    InstructionType(
        "detectable_content:number_placeholders", _placeholders, (),
        ("The response must contain at least {num_placeholders} placeholders represented by square brackets, such as [address].",
         "Include {num_placeholders} or more fill-in fields written in square brackets, like [name]."),
        ood_only=True,
    ),
    InstructionType(
        "detectable_format:number_highlighted_sections", _highlights, (),
        ("Highlight at least {num_highlights} sections in your answer with markdown, i.e. *highlighted section*.",
         "Emphasise {num_highlights} or more phrases by wrapping them in single asterisks, like *this*."),
        ood_only=True,
    ),
    InstructionType(
        "keywords:letter_frequency", _letter_frequency, (),
        ("In your response, the letter {letter} should appear {let_relation} {let_frequency} times.",
         "Use the letter \"{letter}\" {let_relation} {let_frequency} times in your reply."),
        ood_only=True,
    ),
    InstructionType(
        "length_constraints:number_paragraphs", _paragraphs, (),
        ("There should be {num_paragraphs} paragraphs. Paragraphs are separated with the markdown divider: ***",
         "Write exactly {num_paragraphs} paragraphs, separating them with a line containing only ***."),
        ood_only=True,
    ),
)

def render(instruction: InstructionType, wording: str, kwargs: Kwargs) -> str:
    extra = {}
    if "keywords" in kwargs:
        extra["keywords_text"] = _join(kwargs["keywords"])
    if "forbidden_words" in kwargs:
        extra["forbidden_text"] = _join(kwargs["forbidden_words"])
    return wording.format(**kwargs, **extra)


def compatible(chosen: list[InstructionType], candidate: InstructionType) -> bool:
    for other in chosen:
        if candidate.instruction_id == other.instruction_id:
            return False
        if other.instruction_id in candidate.conflicts or candidate.instruction_id in other.conflicts:
            return False
    return True
