"""Rejected rows: every candidate that enters curation leaves it once, kept or rejected with a
reason (schemas.reasons) and a `reason_detail` saying which judge, eval text or kept row was involved."""

from __future__ import annotations

import typing
from typing import cast

import apache_beam as beam

from schemas.records import RejectedRow

REJECTED = "rejected"  # the tag of every rejection output
_FIELDS = tuple(name for name in typing.get_type_hints(RejectedRow) if name not in ("reason", "reason_detail"))


def rejection(row: dict, reason: str, detail: str = "") -> RejectedRow:
    """A rejected-row record: the candidate, its judgments and combined score, the reason."""
    return cast(RejectedRow, {**{k: row[k] for k in _FIELDS if k in row}, "reason": reason, "reason_detail": detail})


def rejected(row: dict, reason: str, detail: str = ""):
    return beam.pvalue.TaggedOutput(REJECTED, rejection(row, reason, detail))
