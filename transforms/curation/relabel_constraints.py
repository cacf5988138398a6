"""Hindsight relabeling, the pure part: which catalog constraints an answer demonstrably satisfies,
and the prompt that asks for exactly those.

A proposer reads kwargs off the answer for one catalog type (a word bound from its word count, the
keywords it uses, its section count, ...); the official IFEval checker then confirms each proposal,
and only confirmed ones are kept. Types marked `ood_only` in the catalog are never proposed: they
stay out of training so that eval_ood keeps measuring transfer.

The choice among the confirmed constraints, seeded by the caller's rng: it wants 1..max_constraints
of them (drawn like the prompt builder's); the types the corpus's passing rows hold least often
come first (ties in a shuffled order), so an answer that happens to meet a type the model rarely
meets (all lowercase, all capitals, quotation wrapping) is labeled with it; each joins when it fits
the ones already chosen (the catalog's and the official conflicts, as the builder checks them).
Wordings are the catalog's train wordings.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from typing import Callable, Mapping, Optional

from transforms.judges.ifeval_verifier import build_checker
from transforms.prompts.instruction_catalog import CATALOG, FORBIDDEN_POOL, KEYWORD_POOL, InstructionType, render
from transforms.prompts.prompt_builder import fits, official_conflicts

Kwargs = dict
Proposer = Callable[[str, random.Random], Optional[Kwargs]]  # (answer, rng) -> kwargs, or None: not satisfied

_WORD = re.compile(r"[A-Za-z]+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
MAX_END_PHRASE_WORDS = 12  # a longer closing sentence is not a phrase a prompt would ask for


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _content_words(text: str, min_length: int = 5) -> list[str]:
    """Distinct words of the answer long enough to be asked for, in first-use order."""
    return list(dict.fromkeys(w for w in _words(text) if len(w) >= min_length))


def lowercase(text: str, rng: random.Random) -> Kwargs | None:
    return {} if any(c.isalpha() for c in text) and text == text.lower() else None


def capitals(text: str, rng: random.Random) -> Kwargs | None:
    return {} if any(c.isalpha() for c in text) and text == text.upper() else None


def word_bound(text: str, rng: random.Random) -> Kwargs | None:
    """A bound the count meets: 'at least' the count rounded down to tens, or 'less than' it rounded up."""
    count = len(re.findall(r"\w+", text))  # the checker's own count (nltk's \w+ tokenizer)
    if not count:
        return None
    if rng.random() < 0.5:
        return {"relation": "at least", "num_words": max(1, count // 10 * 10)}
    return {"relation": "less than", "num_words": count // 10 * 10 + 10}


def keywords(text: str, rng: random.Random) -> Kwargs | None:
    """One or two words the answer uses: the catalog's keyword pool first, else its own longer words."""
    used = _content_words(text)
    pool = [w for w in used if w in KEYWORD_POOL] or used
    if not pool:
        return None
    return {"keywords": sorted(rng.sample(pool, k=min(len(pool), rng.choice([1, 2]))))}


def keyword_frequency(text: str, rng: random.Random) -> Kwargs | None:
    """A word the answer repeats, at least as often as it does."""
    counts = Counter(w for w in _words(text) if len(w) >= 4)
    repeated = sorted(w for w, n in counts.items() if n >= 2)
    if not repeated:
        return None
    word = rng.choice(repeated)
    return {"keyword": word, "frequency": counts[word], "relation": "at least"}


def forbidden_words(text: str, rng: random.Random) -> Kwargs | None:
    """Two words of the catalog's forbidden pool the answer never uses."""
    used = set(_words(text))
    absent = [w for w in FORBIDDEN_POOL if w not in used]
    if len(absent) < 2 or not used:
        return None
    return {"forbidden_words": rng.sample(absent, k=2)}


def end_phrase(text: str, rng: random.Random) -> Kwargs | None:
    """The answer's last sentence, when it has more than one and the last is short enough to be a phrase."""
    sentences = _SENTENCE_END.split(text.strip().strip('"').strip())
    if len(sentences) < 2:
        return None
    last = sentences[-1].strip()
    if not _WORD.search(last) or "\n" in last or len(last.split()) > MAX_END_PHRASE_WORDS:
        return None
    return {"end_phrase": last}


def bullets(text: str, rng: random.Random) -> Kwargs | None:
    count = len(re.findall(r"^\s*\*[^\*].*$", text, flags=re.MULTILINE)) + len(
        re.findall(r"^\s*-.*$", text, flags=re.MULTILINE))
    return {"num_bullets": count} if count else None


def no_comma(text: str, rng: random.Random) -> Kwargs | None:
    return {} if text.strip() and "," not in text else None


def json_format(text: str, rng: random.Random) -> Kwargs | None:
    body = text.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    try:
        json.loads(body)
    except ValueError:
        return None
    return {}


def sections(text: str, rng: random.Random) -> Kwargs | None:
    for spliter in ("Section", "SECTION"):
        count = len(re.findall(rf"\b{spliter}\s?\d+", text))
        if count:
            return {"section_spliter": spliter, "num_sections": count}
    return None


def postscript(text: str, rng: random.Random) -> Kwargs | None:
    lowered = text.lower()
    if re.search(r"\s*p\.\s?p\.\s?s.*$", lowered, flags=re.MULTILINE):
        return {"postscript_marker": "P.P.S"}
    if re.search(r"\s*p\.\s?s\..*$", lowered, flags=re.MULTILINE):
        return {"postscript_marker": "P.S."}
    return None


def title(text: str, rng: random.Random) -> Kwargs | None:
    return {} if any(t.strip("<>").strip() for t in re.findall(r"<<[^\n]+>>", text)) else None


def quotation(text: str, rng: random.Random) -> Kwargs | None:
    body = text.strip()
    return {} if len(body) > 1 and body[0] == body[-1] == '"' else None


# Catalog type -> how its kwargs are read off an answer. Every train type of the catalog has one.
PROPOSERS: dict[str, Proposer] = {
    "change_case:english_lowercase": lowercase,
    "change_case:english_capital": capitals,
    "length_constraints:number_words": word_bound,
    "keywords:existence": keywords,
    "keywords:frequency": keyword_frequency,
    "keywords:forbidden_words": forbidden_words,
    "startend:end_checker": end_phrase,
    "detectable_format:number_bullet_lists": bullets,
    "punctuation:no_comma": no_comma,
    "detectable_format:json_format": json_format,
    "detectable_format:multiple_sections": sections,
    "detectable_content:postscript": postscript,
    "detectable_format:title": title,
    "startend:quotation": quotation,
}
TYPES: dict[str, InstructionType] = {t.instruction_id: t for t in CATALOG if not t.ood_only}
if set(PROPOSERS) != set(TYPES):
    raise ValueError(f"relabel proposers and the catalog's train types differ: {sorted(set(PROPOSERS) ^ set(TYPES))}")


def checker_passes(text: str, instruction_id: str, kwargs: Kwargs) -> bool:
    """The official checker's strict verdict; a checker that cannot be built or raises counts as not passed."""
    try:
        return bool(build_checker(instruction_id, kwargs, "").check_following(text))
    except Exception:  # noqa: BLE001 - a proposal the checker cannot judge is simply not offered
        return False


def satisfied(text: str, rng: random.Random) -> dict[str, Kwargs]:
    """{catalog type: kwargs read off the answer} for every type the official checker confirms, in catalog order."""
    if not text.strip():
        return {}
    found = {}
    for instruction_id, propose in PROPOSERS.items():
        kwargs = propose(text, rng)
        if kwargs is not None and checker_passes(text, instruction_id, kwargs):
            found[instruction_id] = kwargs
    return found


def satisfied_constraints(text: str, rng: random.Random, max_constraints: int,
                          passing: Mapping[str, int] | None = None) -> list[tuple[str, Kwargs]]:
    """1..max_constraints compatible (type, kwargs) the answer satisfies, rarest first by `passing` ({type: how
    many passing rows of the corpus hold it}; none: all equally rare); [] when it satisfies none."""
    found = satisfied(text, rng)
    if not found:
        return []
    order = sorted(found)
    rng.shuffle(order)
    order.sort(key=lambda t: (passing or {}).get(t, 0))  # stable: the shuffle breaks ties
    wanted = rng.randint(1, max_constraints)
    official, chosen = official_conflicts(), []
    for instruction_id in order:
        if len(chosen) >= wanted:
            break
        if fits(chosen, TYPES[instruction_id], official):
            chosen.append(TYPES[instruction_id])
    return [(t.instruction_id, found[t.instruction_id]) for t in chosen]


def prompt_text_for(task: str, constraints: list[tuple[str, Kwargs]], rng: random.Random) -> str:
    """The task, then each constraint in one of its train wordings, as the prompt builder joins them."""
    parts = [task.strip()]
    for instruction_id, kwargs in constraints:
        itype = TYPES[instruction_id]
        parts.append(render(itype, rng.choice(itype.train_wordings), kwargs))
    return " ".join(parts)
