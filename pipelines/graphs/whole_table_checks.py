"""The expectations that need a whole table, checked without holding one: row counts from the Parquet
footers, and uniqueness in Beam (count each key, keep the keys seen twice, sum their rows and take the three
smallest as examples in one bounded combine). Beam's metrics carry the results back to the launcher, on any
runner. Everything else runs in Great Expectations one bounded batch at a time (pipelines/stages/validate.py)."""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

from transforms.io.parquet_io import SHARD_GLOB, footer_rows, list_shards

NAMESPACE = "selfsift.validate"
EXAMPLES = 3
ROW_COUNT = ("ExpectTableRowCountToEqual", "ExpectTableRowCountToBeBetween")
UNIQUE = ("ExpectColumnValuesToBeUnique", "ExpectCompoundColumnsToBeUnique")


def whole_table(expectation) -> bool:
    return type(expectation).__name__ in ROW_COUNT + UNIQUE


def unique_columns(expectation) -> list[str]:
    return list(getattr(expectation, "column_list", None) or [expectation.column])


@dataclass(frozen=True)
class UniqueCheck:
    check_id: str
    location: str  # a folder of shards or one Parquet file
    columns: tuple[str, ...]


class _Duplicates(beam.CombineFn):
    """(key, count) of keys seen more than once -> (rows carrying them, the smallest EXAMPLES keys)."""

    def create_accumulator(self):
        return 0, []

    def add_input(self, accumulator, key_count):
        rows, examples = accumulator
        return rows + key_count[1], heapq.nsmallest(EXAMPLES, examples + [str(key_count[0])])

    def merge_accumulators(self, accumulators):
        accumulators = list(accumulators)
        return (sum(rows for rows, _ in accumulators),
                heapq.nsmallest(EXAMPLES, [e for _, examples in accumulators for e in examples]))

    def extract_output(self, accumulator):
        return accumulator


def _report(found: tuple[int, list[str]], check_id: str):
    rows, examples = found
    Metrics.counter(NAMESPACE, f"{check_id}.unexpected").inc(rows)
    for example in examples:
        Metrics.string_set(NAMESPACE, f"{check_id}.examples").add(example)


def unique_graph(checks: list[UniqueCheck]):
    def build(p):
        for check in checks:
            pattern = check.location if check.location.endswith(".parquet") else f"{check.location}/{SHARD_GLOB}"
            columns = list(check.columns)
            _ = (p
                 | f"Read {check.check_id}" >> beam.io.ReadFromParquet(pattern, columns=columns)
                 | f"Key {check.check_id}" >> beam.Map(
                     lambda row, cs=columns: row[cs[0]] if len(cs) == 1 else tuple(row[c] for c in cs))
                 | f"Count {check.check_id}" >> beam.combiners.Count.PerElement()
                 | f"Repeated {check.check_id}" >> beam.Filter(lambda key_count: key_count[1] > 1)
                 | f"Duplicates {check.check_id}" >> beam.CombineGlobally(_Duplicates())
                 | f"Report {check.check_id}" >> beam.Map(_report, check_id=check.check_id))
    return build


def unique_results(result, checks: list[UniqueCheck]) -> dict[str, tuple[int, list[str]]]:
    """{check id: (rows whose key is not unique, up to EXAMPLES of those keys)} from a finished run's metrics."""
    found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    counters = {m.key.metric.name: m.committed for m in found["counters"]}
    examples = {m.key.metric.name: sorted(m.committed)[:EXAMPLES] for m in found["string_sets"]}
    return {c.check_id: (counters.get(f"{c.check_id}.unexpected", 0), examples.get(f"{c.check_id}.examples", []))
            for c in checks}


def row_count(location: str) -> int:
    paths = [location] if location.endswith(".parquet") else list_shards(location)
    return sum(footer_rows(path) for path in paths)


def row_count_holds(expectation, rows: int) -> bool:
    if type(expectation).__name__ == "ExpectTableRowCountToEqual":
        return rows == expectation.value
    low, high = expectation.min_value, expectation.max_value
    return (low is None or rows >= low) and (high is None or rows <= high)
