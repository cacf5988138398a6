"""Relabel share: relabeled rows (transforms/curation/relabel.py) beyond `curate.relabel.max_share` of
the kept corpus are rejected, in a seeded hash order of their ids. Applied after selection; off when
relabeling is."""

from __future__ import annotations

import hashlib

import apache_beam as beam

from schemas.reasons import OVER_RELABEL_SHARE, RELABELED
from transforms.curation.rejections import REJECTED, rejected
from transforms.curation.relabel import RelabelConfig, enabled
from transforms.curation.steps import SetStep


def allowed_relabeled(others: int, relabeled: int, max_share: float) -> int:
    """How many relabeled rows keep their share of the corpus at most max_share, beside `others` rows."""
    if max_share >= 1:
        return relabeled
    return min(relabeled, int(max_share * others / (1 - max_share) + 1e-9))


def seeded_order(candidate_id: str, seed: int) -> bytes:
    return hashlib.blake2b(f"{seed}\x1f{candidate_id}".encode(), digest_size=8).digest()


def cap_relabeled(rows: list[dict], max_share: float, seed: int):
    relabeled = sorted((r for r in rows if r["origin"] == RELABELED),
                       key=lambda r: seeded_order(r["candidate_id"], seed))
    others = [r for r in rows if r["origin"] != RELABELED]
    keep = allowed_relabeled(len(others), len(relabeled), max_share)
    yield from others
    yield from relabeled[:keep]
    for row in relabeled[keep:]:
        yield rejected(row, OVER_RELABEL_SHARE, f"{keep} of {len(relabeled)} relabeled rows kept beside "
                                                f"{len(others)} others (max_share {max_share:g})")


class CapRelabeled(beam.PTransform):
    def __init__(self, max_share: float, seed: int):
        super().__init__()
        self.max_share, self.seed = max_share, seed

    def expand(self, rows):
        out = (
            rows
            | "GatherForShare" >> beam.combiners.ToList()
            | "CapRelabeled" >> beam.FlatMap(cap_relabeled, max_share=self.max_share, seed=self.seed)
            .with_outputs(REJECTED, main="kept")
        )
        return out.kept, out[REJECTED]


STEP = SetStep("relabel share", (OVER_RELABEL_SHARE,),
               lambda plan: CapRelabeled(plan.config.relabel.max_share, plan.seed) if enabled(plan) else None,
               RelabelConfig, "relabel")
