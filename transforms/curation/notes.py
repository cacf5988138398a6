"""What curation counts without rejecting a candidate for it: judgments that name no candidate,
and answers embedded from their first tokens only.
A step emits a note, (kind, id), to the tagged output NOTES; the manifest records each kind's count
and its smallest id as an example."""

from __future__ import annotations

import apache_beam as beam

NOTES = "notes"
JUDGMENTS_WITHOUT_CANDIDATE = "judgments_without_candidate"
TRUNCATED_FOR_EMBEDDING = "answers_truncated_for_embedding"
MEANING = {  # kind -> what a count of it means, for the log
    JUDGMENTS_WITHOUT_CANDIDATE: "judgments name a candidate_id that no candidate has; they were not used",
    TRUNCATED_FOR_EMBEDDING: "answers are longer than semantic dedup's token limit; their first tokens stood for them",
}


class _CountAndSmallest(beam.CombineFn):
    def create_accumulator(self):
        return 0, None

    def add_input(self, accumulator, note_id):
        count, smallest = accumulator
        return count + 1, note_id if smallest is None else min(smallest, note_id)

    def merge_accumulators(self, accumulators):
        counts, ids = zip(*accumulators)
        present = [i for i in ids if i is not None]
        return sum(counts), min(present) if present else None

    def extract_output(self, accumulator):
        return {"count": accumulator[0], "example": accumulator[1]}


def every_kind(found: dict) -> dict:
    return {kind: found.get(kind, {"count": 0, "example": None}) for kind in MEANING}


class SummarizeNotes(beam.PTransform):
    """Notes -> one dict: {kind: {"count": n, "example": smallest id or None}} for every kind."""

    def expand(self, notes):
        return (
            notes
            | "CountByKind" >> beam.CombinePerKey(_CountAndSmallest())
            | "ToDict" >> beam.combiners.ToDict()
            | "EveryKind" >> beam.Map(every_kind)
        )


def described(summary: dict) -> list[str]:
    """One line per kind that was counted, e.g. for the log."""
    return [f"{n['count']} {MEANING[kind]} (e.g. {n['example']})" for kind, n in summary.items() if n["count"]]
