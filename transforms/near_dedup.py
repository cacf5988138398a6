"""Near-duplicate removal with MinHash LSH, as a Beam composite.

signatures (datasketch MinHash over word shingles) -> band keys -> group by band -> candidate
pairs whose estimated Jaccard similarity reaches the threshold -> connected components -> keep
one row per cluster (highest score, then smallest candidate id).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import apache_beam as beam
import numpy as np

from transforms.clusters import KeepOnePerCluster
from transforms.rejections import NEAR_DUPLICATE
from transforms.text_normalization import words

# A bucket this large is compared as a star (each member against its first) instead of all pairs,
# so a degenerate bucket cannot make the step quadratic.
MAX_PAIRWISE_BUCKET = 64


@dataclass(frozen=True)
class MinHashParams:
    ngram: int = 5
    num_perm: int = 128
    bands: int = 32
    threshold: float = 0.7
    seed: int = 1


def shingles(text: str, n: int) -> set[bytes]:
    """Word n-grams of the normalized text; a text shorter than n is one shingle."""
    tokens = words(text)
    if len(tokens) < n:
        return {" ".join(tokens).encode()}
    return {" ".join(tokens[i : i + n]).encode() for i in range(len(tokens) - n + 1)}


class Signer:
    """MinHash signatures with the permutations built once."""

    def __init__(self, params: MinHashParams):
        from datasketch import MinHash

        self.params = params
        self._template = MinHash(num_perm=params.num_perm, seed=params.seed)

    def signature(self, text: str) -> np.ndarray:
        from datasketch import MinHash

        m = MinHash(num_perm=self.params.num_perm, seed=self.params.seed, permutations=self._template.permutations,
                    scheme=self._template.scheme)
        m.update_batch(sorted(shingles(text, self.params.ngram)))
        return m.hashvalues


def band_keys(signature: np.ndarray, bands: int) -> list[tuple[int, str]]:
    rows = len(signature) // bands
    return [(b, hashlib.blake2b(signature[b * rows : (b + 1) * rows].tobytes(), digest_size=12).hexdigest())
            for b in range(bands)]


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a == b)) / len(a)


def bucket_pairs(members: list[tuple[str, np.ndarray]], threshold: float):
    """Pairs of a bucket whose signatures agree on at least `threshold` of their positions."""
    members = sorted(members, key=lambda m: m[0])
    if len(members) > MAX_PAIRWISE_BUCKET:
        pairs = ((members[0], m) for m in members[1:])
    else:
        pairs = ((members[i], members[j]) for i in range(len(members)) for j in range(i + 1, len(members)))
    for (id_a, sig_a), (id_b, sig_b) in pairs:
        if id_a != id_b and estimated_jaccard(sig_a, sig_b) >= threshold:
            yield (id_a, id_b)


class _Sign(beam.DoFn):
    def __init__(self, params: MinHashParams):
        self.params = params

    def setup(self):
        self.signer = Signer(self.params)

    def process(self, row):
        yield row["candidate_id"], self.signer.signature(row["text"])


class NearDuplicateEdges(beam.PTransform):
    """Rows with `candidate_id` and `text` -> (id, id) pairs of near-duplicates."""

    def __init__(self, params: MinHashParams):
        super().__init__()
        self.params = params

    def expand(self, rows):
        bands, threshold = self.params.bands, self.params.threshold
        return (
            rows
            | "Sign" >> beam.ParDo(_Sign(self.params))
            | "BandKeys" >> beam.FlatMap(lambda kv: [(key, kv) for key in band_keys(kv[1], bands)])
            | "GroupByBand" >> beam.GroupByKey()
            | "BucketPairs" >> beam.FlatMap(lambda kv: bucket_pairs(list(kv[1]), threshold))
            | "DistinctPairs" >> beam.Distinct()
        )


class NearDedup(beam.PTransform):
    """Rows -> tagged outputs `kept` (one per near-duplicate cluster) and `rejected` (near_duplicate)."""

    def __init__(self, params: MinHashParams):
        super().__init__()
        self.params = params

    def expand(self, rows):
        edges = rows | "Edges" >> NearDuplicateEdges(self.params)
        return (rows, edges) | "KeepOnePerCluster" >> KeepOnePerCluster(NEAR_DUPLICATE)
