"""The manifest's counts, made in the pipeline by one combiner: candidates and judgments read, kept rows by
(origin, generate round), rejected rows by (origin, generate round, reason), and kept rows by (origin,
instruction type). The combiner holds one count per distinct key, so its size follows the number of reasons,
origins, rounds and types, never the number of rows; no step and no launcher reads the written tables to count."""

from __future__ import annotations

from collections import Counter

import apache_beam as beam

CANDIDATES, JUDGMENTS, KEPT, REJECTED_ROWS, KEPT_TYPES = "candidates", "judgments", "kept", "rejected", "kept_types"


def keys_of(kind: str, row: dict) -> list[tuple]:
    """The counts one row adds to."""
    if kind == KEPT:
        return [(KEPT, row["origin"], row["generation_round"])] + [
            (KEPT_TYPES, row["origin"], t) for t in row["instruction_ids"]]
    if kind == REJECTED_ROWS:
        return [(REJECTED_ROWS, row["origin"], row["generation_round"], row["reason"])]
    return [(kind,)]


def tally(rows_by_kind: dict[str, list]) -> Counter:
    """The same counts without Beam, over lists of rows."""
    return Counter(key for kind, rows in rows_by_kind.items() for row in rows for key in keys_of(kind, row))


class _Sum(beam.CombineFn):
    def create_accumulator(self) -> Counter:
        return Counter()

    def add_input(self, accumulator: Counter, key) -> Counter:
        accumulator[key] += 1
        return accumulator

    def merge_accumulators(self, accumulators) -> Counter:
        merged: Counter = Counter()
        for accumulator in accumulators:
            merged.update(accumulator)
        return merged

    def extract_output(self, accumulator: Counter) -> Counter:
        return accumulator


class Tally(beam.PTransform):
    """{kind: rows} (kinds above) -> one Counter of keys_of."""

    def expand(self, rows_by_kind):
        keyed = [rows | f"Keys{kind.title()}" >> beam.FlatMap(lambda row, k=kind: keys_of(k, row))
                 for kind, rows in rows_by_kind.items()]
        return keyed | "AllKeys" >> beam.Flatten() | "Sum" >> beam.CombineGlobally(_Sum())


def to_json(counts: Counter) -> list:
    return sorted([*key, n] for key, n in counts.items())


def from_json(entries: list) -> Counter:
    return Counter({tuple(entry[:-1]): entry[-1] for entry in entries})
