"""Exact dedup: of rows whose normalized text is identical, the best is kept and records how many
it stands for; the rest are duplicates."""

from __future__ import annotations

import apache_beam as beam

from schemas.reasons import DUPLICATE
from transforms.curation.clusters import preference
from transforms.curation.rejections import REJECTED, rejected
from transforms.curation.steps import SetStep
from transforms.text_normalization import text_hash


def keep_one_per_text(digest: str, rows):
    rows = sorted(rows, key=preference)
    yield {**rows[0], "text_sha256": digest, "dedup_cluster": rows[0]["candidate_id"], "dedup_cluster_size": len(rows)}
    for row in rows[1:]:
        yield rejected(row, DUPLICATE, f"same text as kept {rows[0]['candidate_id']}")


class ExactDedup(beam.PTransform):
    def expand(self, rows):
        out = (
            rows
            | "KeyByText" >> beam.Map(lambda r: (text_hash(r["text"]), r))
            | "GroupByText" >> beam.GroupByKey()
            | "KeepOnePerText" >> beam.FlatMapTuple(keep_one_per_text).with_outputs(REJECTED, main="kept")
        )
        return out.kept, out[REJECTED]


STEP = SetStep("exact dedup", (DUPLICATE,), lambda plan: ExactDedup())
