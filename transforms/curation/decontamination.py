"""Decontamination: a candidate sharing any word n-gram (default 13) with an eval text is dropped.

The index maps hashed n-grams of every eval text to where the text came from, so a rejection can
name it. Texts shorter than n words contribute no n-grams and cannot match.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from schemas.reasons import CONTAMINATED
from transforms.curation.steps import RowFilter
from transforms.settings import require
from transforms.text_normalization import words


@dataclass(frozen=True)
class DecontaminationConfig:
    """Drop answers sharing a word n-gram with the eval prompts or these files."""

    enabled: bool = True  # on by default: answers must not leak the eval prompts into training
    ngram: int = 13  # word n-grams shared with any eval text
    extra_eval_files: list[str] = field(default_factory=list)  # .jsonl/.parquet/.txt files of more eval text

    def validate(self, where: str) -> None:
        require(self.ngram >= 1, f"{where}.ngram must be at least 1")


def ngram_hashes(text: str, n: int) -> list[int]:
    tokens = words(text)
    return [int.from_bytes(hashlib.blake2b(" ".join(tokens[i : i + n]).encode(), digest_size=8).digest(), "big")
            for i in range(len(tokens) - n + 1)]


def build_index(sources: list[tuple[str, str]], n: int, shared_with_training: Iterable[str] = ()) -> dict[int, str]:
    """(source label, text) pairs -> n-gram hash -> the first source label holding it.

    N-grams that also occur in `shared_with_training` (the train prompts, read as a stream: the index, not the
    train set, is what stays in memory) are left out: text the training prompts already hold, such as a
    constraint wording used in both splits, is not eval leakage, and an answer repeating it is the echo
    heuristic's business.
    """
    index: dict[int, str] = {}
    for label, text in sources:
        for h in ngram_hashes(text, n):
            index.setdefault(h, label)
    for text in shared_with_training:
        for h in ngram_hashes(text, n):
            index.pop(h, None)
    return index


def contamination(text: str, index: dict[int, str], n: int) -> str | None:
    """The source label of the first eval n-gram the text contains, or None when clean."""
    for h in ngram_hashes(text, n):
        if h in index:
            return index[h]
    return None


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def eval_file_texts(path: str) -> list[tuple[str, str]]:
    """Every string of an eval file (.jsonl rows, .parquet rows, or a whole .txt), labelled file:row."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{path}: eval file listed under curate.decontamination.extra_eval_files not found")
    if file.suffix == ".txt":
        return [(path, file.read_text(encoding="utf-8"))]
    if file.suffix == ".jsonl":
        out = []
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
            out += [(f"{path}:{number}", s) for s in _strings(row)]
        return out
    if file.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(file).to_pylist()
        return [(f"{path}:{number}", s) for number, row in enumerate(rows, start=1) for s in _strings(row)]
    raise ValueError(f"{path}: eval files must be .jsonl, .parquet or .txt")


def decontamination(plan):
    cfg = plan.config.decontamination
    if not cfg.enabled:
        return None
    index, n = plan.decontamination_index, cfg.ngram

    def check(row):
        if source := contamination(row["text"], index, n):
            return CONTAMINATED, f"shares a {n}-gram with {source}"
        return None

    return check


STEP = RowFilter("decontamination", (CONTAMINATED,), decontamination, DecontaminationConfig, "decontamination")
