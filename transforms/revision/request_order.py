"""Revision requests in one fixed order before RunInference batches them.

Sampling in bfloat16 depends slightly on which requests share a padded batch, and RunInference batches in the
order elements arrive. After a GroupByKey that order is left to hashing, so the same requests would be batched
differently from one run to the next and the same params would not give the same answers. Evaluate feeds its
prompts in a sorted list for the same reason (pipelines/stages/evaluate.py)."""

from __future__ import annotations

from collections.abc import Callable

import apache_beam as beam


class InFixedOrder(beam.PTransform):
    """The collection's elements sorted by `key`, gathered on one worker: for requests in the thousands (one
    revision per unsolved prompt), not for a whole corpus."""

    def __init__(self, key: Callable):
        super().__init__()
        self._key = key

    def expand(self, pcoll):
        return (pcoll
                | "Gather" >> beam.combiners.ToList()
                | "Sort" >> beam.FlatMap(lambda items, key: sorted(items, key=key), key=self._key))
