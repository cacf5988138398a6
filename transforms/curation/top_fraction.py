"""The top fraction of rows by rank, found exactly without gathering the rows.

The best ceil(n * fraction) rows by `clusters.preference` (all rank keys are distinct: the candidate id breaks
ties) are those whose key is at most the k-th smallest. To find that key, approximate quantiles of the keys cut
the range into intervals, an exact count per interval names the one holding the k-th key, and the same is done
again inside it. Only the rows of the last interval are ranked together: about n / QUANTILES**2 of them (one row
per ten thousand at a million rows, with QUANTILES 1000). Every side input is a count, a bound or QUANTILES keys.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import NamedTuple

import apache_beam as beam

from schemas.reasons import BELOW_TOP_FRACTION
from transforms.curation.clusters import preference
from transforms.curation.rejections import REJECTED, rejected

QUANTILES = 1000
PASSES = 2


class Band(NamedTuple):
    """Keys in [lo, hi) (None: unbounded), and how many keys lie below lo."""

    lo: tuple | None
    hi: tuple | None
    below: int


def within(key: tuple, band: Band) -> bool:
    return (band.lo is None or key >= band.lo) and (band.hi is None or key < band.hi)


def narrowed(band: Band, cuts: list, counts: dict[int, int], k: int) -> Band:
    """The interval between consecutive `cuts` inside `band` that holds the k-th smallest key; `counts` are the
    band's keys per interval (bisect_right of the cuts)."""
    below = band.below
    for i in sorted(counts):
        if below + counts[i] >= k:
            return Band(cuts[i - 1] if i > 0 else band.lo, cuts[i] if i < len(cuts) else band.hi, below)
        below += counts[i]
    return band  # no k-th key (k is 0, or there are no rows)


def kth_key(band_keys: list, band: Band, k: int) -> tuple | None:
    return sorted(band_keys)[k - band.below - 1] if k > band.below else None


def split(row: dict, cut: tuple | None, n: int, fraction: float):
    if cut is not None and preference(row) <= cut:
        yield row
    else:
        yield rejected(row, BELOW_TOP_FRACTION, f"outside the best {fraction:g} of {n}")


class TopFraction(beam.PTransform):
    """Rows -> (kept: the best ceil(n * fraction) by preference, rejected: the rest as below_top_fraction)."""

    def __init__(self, fraction: float, quantiles: int = QUANTILES):
        super().__init__()
        self.fraction, self.quantiles = fraction, quantiles

    def expand(self, rows):
        fraction = self.fraction
        n = rows | "Count" >> beam.combiners.Count.Globally()
        k = beam.pvalue.AsSingleton(n | "K" >> beam.Map(lambda count: math.ceil(count * fraction)))
        keys = rows | "RankKeys" >> beam.Map(preference)
        band = rows.pipeline | "Everything" >> beam.Create([Band(None, None, 0)])
        for level in range(PASSES):
            current = beam.pvalue.AsSingleton(band)
            in_band = keys | f"InBand{level}" >> beam.Filter(within, band=current)
            cuts = beam.pvalue.AsSingleton(in_band | f"Quantiles{level}" >> beam.ApproximateQuantiles.Globally(
                self.quantiles))
            counts = (in_band
                      | f"Interval{level}" >> beam.Map(lambda key, cuts: bisect_right(cuts, key), cuts=cuts)
                      | f"PerInterval{level}" >> beam.combiners.Count.PerElement()
                      | f"Counts{level}" >> beam.combiners.ToDict())
            band = band | f"Narrow{level}" >> beam.Map(narrowed, cuts=cuts, counts=beam.pvalue.AsSingleton(counts), k=k)
        last = beam.pvalue.AsSingleton(band)
        cut = (keys
               | "LastBand" >> beam.Filter(within, band=last)
               | "GatherLastBand" >> beam.combiners.ToList()  # about n / quantiles**PASSES keys
               | "KthKey" >> beam.Map(kth_key, band=last, k=k))
        out = rows | "Split" >> beam.FlatMap(split, cut=beam.pvalue.AsSingleton(cut), n=beam.pvalue.AsSingleton(n),
                                             fraction=fraction).with_outputs(REJECTED, main="kept")
        return out.kept, out[REJECTED]
