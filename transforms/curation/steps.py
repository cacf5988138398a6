"""The curation step contract. A step is declared once, in its own module, and listed in
`chain.CHAIN`; the screen, the funnel and the manifest derive from that list.

- `RowFilter`: looks at one row at a time and names the first reason it fails. Consecutive row
  filters run together in one Beam step (the screen).
- `SetStep`: a Beam transform over all rows (dedup, selection), returning (kept, rejected), or
  outputs `kept`, `rejected` and, when it counts something it does not reject for, `notes`
  (transforms/curation/notes.py).

`build(plan)` returns the check or transform this plan uses, or None when the step is off (not
enabled, or replaced by an ablation control); an off step still appears in the funnel, rejecting 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:
    import apache_beam as beam

    from schemas.records import JudgedRow
    from transforms.curation.plan import CurationPlan

# (row) -> (reason, detail) when the row fails, else None
RowCheck = Callable[["JudgedRow"], Optional[tuple[str, str]]]


@dataclass(frozen=True)
class RowFilter:
    name: str  # as the funnel shows it
    reasons: tuple[str, ...]  # every rejection reason it can give (schemas.reasons)
    build: Callable[[CurationPlan], Optional[RowCheck]]
    config: type | None = None  # its settings, read from params `curate.<section>`
    section: str = ""


@dataclass(frozen=True)
class SetStep:
    name: str
    reasons: tuple[str, ...]
    # rows -> (kept, rejected), or outputs `kept`, `rejected` and optionally `notes`
    build: Callable[[CurationPlan], Optional[beam.PTransform]]
    config: type | None = None
    section: str = ""
