"""A model folder's files: their checksums, and the summary (`selfsift_model.json`) that lists them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from transforms.io.layout import MODEL_SUMMARY

SUMMARY = MODEL_SUMMARY
# Keys of a model summary whose source came from the Hub.
HUB_ID, HUB_REVISION = "hub_id", "hub_revision"


class UntrustedModelFolder(ValueError):
    """A remote model folder whose summary does not vouch for the files it needs."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_checksums(folder: str | Path) -> dict[str, str]:
    """{name: sha256} of every file in a flat local model folder but its summary."""
    entries = sorted(Path(folder).iterdir())
    nested = [p.name for p in entries if not p.is_file()]
    if nested:
        raise ValueError(f"{folder}: model folders are flat, but it holds {', '.join(nested)}")
    return {p.name: sha256_file(p) for p in entries if p.name != SUMMARY}


def summary_listing_files(folder: str | Path) -> bytes:
    """The folder's summary (an empty one if it has none) with `files`: every other file and its sha256."""
    path = Path(folder, SUMMARY)
    summary = json.loads(path.read_text()) if path.is_file() else {}
    return (json.dumps({**summary, "files": file_checksums(folder)}, indent=2) + "\n").encode()
