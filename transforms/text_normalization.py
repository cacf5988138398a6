"""The one text normalization every comparison uses: NFKC, casefolded, whitespace collapsed."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_WORD = re.compile(r"\w+")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"\s+", " ", text).strip()


def text_hash(text: str) -> str:
    return hashlib.sha256(normalize(text).encode()).hexdigest()


def words(text: str) -> list[str]:
    """Word tokens of the normalized text, punctuation dropped."""
    return _WORD.findall(normalize(text))
