"""What an answer shows beyond its constraints: format artifacts, refusals, its language.

Pure functions of the answer text (and, where the prompt decides what is wanted, its instruction
ids). The evaluate stage's health metrics count them over eval answers; the artifact heuristics
in curation (transforms/judges/heuristics.py) apply the same functions to candidates.
"""

from __future__ import annotations

import re

from schemas.reasons import STRAY_QUOTE, TEMPLATE_MARKUP, UNBALANCED

# The one instruction that asks for a quote mark at the start of the answer.
QUOTATION_WRAPPING = "startend:quotation"
RESPONSE_LANGUAGE = "language:response_language"
DEFAULT_LANGUAGE = "en"  # the language of the built-in prompt sets

_DOUBLE_QUOTES = ('"', "\u201c", "\u201d")
_PAIRS = {")": "(", "]": "[", "}": "{"}
_FENCE = "```"
# Chat-template control text that a model should never write out: special tokens (<|im_start|>,
# <|eot_id|>, <s>, [INST]) and bare role lines left from a training template.
_MARKUP = re.compile(r"<\|[\w.-]+\|>|</?s>|\[/?INST\]|<<SYS>>|^\s*(system|user|assistant)\s*:?\s*$",
                     re.IGNORECASE | re.MULTILINE)
_REFUSAL = re.compile(r"^\W*(i'?m sorry|i am sorry|i apologi[sz]e|i cannot|i can'?t|i'?m unable|i am unable|i won'?t|"
                      r"as an ai|as a language model)\b", re.IGNORECASE)


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(position, line) of the non-empty lines outside fenced code blocks."""
    lines, in_code = [], False
    for n, line in enumerate(text.splitlines()):
        if line.lstrip().startswith(_FENCE):
            in_code = not in_code
            continue
        if line.strip() and not in_code:
            lines.append((n, line.strip()))
    return lines


def _quote_count(line: str) -> int:
    return sum(line.count(q) for q in _DOUBLE_QUOTES)


def stray_quote_paragraphs(text: str, instruction_ids: list[str] | tuple[str, ...] = ()) -> int:
    """Paragraphs (lines outside code) that open on a double quote which they never close.

    A quote opening the first paragraph is wanted when the prompt asks for quotation wrapping."""
    lines = _prose_lines(text)
    wrapped = QUOTATION_WRAPPING in instruction_ids
    return sum(line.startswith(_DOUBLE_QUOTES) and _quote_count(line) % 2 == 1 and not (wrapped and k == 0)
               for k, (_, line) in enumerate(lines))


def unbalanced_pairs(text: str) -> bool:
    """An odd number of straight double quotes, or brackets that do not nest and close."""
    if text.count('"') % 2 or text.count("\u201c") != text.count("\u201d"):
        return True
    stack = []
    for char in text:
        if char in "([{":
            stack.append(char)
        elif char in _PAIRS:
            if not stack or stack.pop() != _PAIRS[char]:
                return True
    return bool(stack)


def template_markup(text: str) -> bool:
    return bool(_MARKUP.search(text))


# The format artifacts, each a predicate of (text, whether the model ended it, the prompt's
# instruction ids), named by the rejection reason of its curation heuristic. A cut-off answer is
# never unbalanced: the token budget closed it, not the model.
ARTIFACTS = {
    STRAY_QUOTE: lambda text, finished, instruction_ids: stray_quote_paragraphs(text, instruction_ids) > 0,
    UNBALANCED: lambda text, finished, instruction_ids: finished and unbalanced_pairs(text),
    TEMPLATE_MARKUP: lambda text, finished, instruction_ids: template_markup(text),
}


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.match(text))


def expected_language(instruction_ids, kwargs: list[dict]) -> str:
    """The language the prompt asks for: its response_language constraint's, else the default."""
    for instruction, args in zip(instruction_ids, kwargs, strict=True):
        if instruction == RESPONSE_LANGUAGE and (args or {}).get("language"):
            return args["language"]
    return DEFAULT_LANGUAGE


def detected_language(text: str) -> str:
    """ISO 639-1 code by langdetect (the detector the official checkers use), "" when it cannot tell."""
    import langdetect

    langdetect.DetectorFactory.seed = 0  # langdetect is random unless seeded
    try:
        return langdetect.detect(text)
    except langdetect.LangDetectException:
        return ""
