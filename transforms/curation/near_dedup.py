"""Near-duplicate removal with MinHash LSH, as a Beam composite.

signatures (datasketch MinHash over word shingles) -> band keys -> group by (band, key): one bucket each ->
candidate pairs whose estimated Jaccard similarity reaches the threshold, their signatures joined by id ->
connected components, distributed (components.py) -> keep one row per cluster (highest score, then smallest
candidate id). The same clusters as datasketch's MinHashLSH with the same parameters, confirmed by the same
Jaccard estimate; no step holds the corpus's signatures, edges or clusters.
"""

from __future__ import annotations

from dataclasses import dataclass

import apache_beam as beam
import numpy as np

from schemas.reasons import NEAR_DUPLICATE
from transforms.curation.clusters import KeepOnePerCluster
from transforms.curation.steps import SetStep
from transforms.settings import require
from transforms.text_normalization import words

# A bucket larger than this is not turned into all its pairs (quadratic in pairs to shuffle): its
# members are compared right there, and only the edges of a spanning forest of its similar pairs go on.
MAX_PAIRWISE_BUCKET = 64


MINHASH_SEED = 1


@dataclass(frozen=True)
class NearDedupConfig:
    """MinHash LSH over word shingles."""

    enabled: bool = True  # keep one answer per cluster of near-duplicates
    ngram: int = 5  # word shingles
    num_perm: int = 128  # MinHash permutations
    # LSH bands of num_perm / bands rows; must divide num_perm. 32 bands of 4 rows: pairs at Jaccard
    # 0.7 share a band with probability ~1 (16 bands of 8 find a 0.75 pair 82 % of the time)
    bands: int = 32
    threshold: float = 0.7  # estimated Jaccard similarity at which two answers are near-duplicates

    def validate(self, where: str) -> None:
        require(self.ngram >= 1, f"{where}.ngram must be at least 1")
        require(self.bands >= 1 and self.num_perm % self.bands == 0,
                f"{where}.bands must be at least 1 and divide num_perm ({self.num_perm})")
        require(0 < self.threshold <= 1, f"{where}.threshold must be in (0, 1]")


def shingles(text: str, n: int) -> set[bytes]:
    """Word n-grams of the normalized text; a text shorter than n is one shingle."""
    tokens = words(text)
    if len(tokens) < n:
        return {" ".join(tokens).encode()}
    return {" ".join(tokens[i : i + n]).encode() for i in range(len(tokens) - n + 1)}


class Signer:
    """MinHash signatures with the permutations built once."""

    def __init__(self, params: NearDedupConfig):
        from datasketch import MinHash

        self.params = params
        self._template = MinHash(num_perm=params.num_perm, seed=MINHASH_SEED)

    def signature(self, text: str) -> np.ndarray:
        from datasketch import MinHash

        m = MinHash(num_perm=self.params.num_perm, seed=MINHASH_SEED, permutations=self._template.permutations,
                    scheme=self._template.scheme)
        m.update_batch(sorted(shingles(text, self.params.ngram)))
        return m.hashvalues


def band_hashes(signatures: np.ndarray, bands: int) -> np.ndarray:
    """One 64-bit key per band per row ([rows, bands]): the band's hash values mixed together.

    Two rows share a key when their band is equal (or, with chance ~2^-64, on a collision, which the
    Jaccard check then drops)."""
    rows_per_band = signatures.shape[1] // bands
    values = signatures[:, : bands * rows_per_band].reshape(len(signatures), bands, rows_per_band).astype(np.uint64)
    keys = np.full((len(signatures), bands), 0xCBF29CE484222325, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for r in range(rows_per_band):
            keys = (keys ^ values[:, :, r]) * np.uint64(0x100000001B3)
            keys ^= keys >> np.uint64(29)
    return keys


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a == b)) / len(a)


def bucket_work(bucket):
    """A bucket (rows sharing a band key) -> what to check: ("pair", (a, b)) for each pair of a small bucket;
    ("member", (id, key)) for each member of a bucket over MAX_PAIRWISE_BUCKET, which is compared in place once its
    members' signatures are joined to it. A bucket of one row gives nothing."""
    key, ids = bucket
    members = sorted(set(ids))
    if len(members) > MAX_PAIRWISE_BUCKET:
        for member in members:
            yield "member", (member, key)
        return
    for i in range(len(members)):
        for j in range(i + 1, len(members)):
            yield "pair", (members[i], members[j])


def spanning_edges(ids: list[str], signatures: np.ndarray, threshold: float) -> list[tuple[str, str]]:
    """Edges of a spanning forest of the graph of pairs whose estimated Jaccard similarity reaches
    the threshold: each member is compared with every member not yet reached (breadth-first), so
    every similar pair ends up in one cluster. Each edge is itself a similar pair."""
    unreached = np.ones(len(ids), dtype=bool)
    edges = []
    for root in range(len(ids)):
        if not unreached[root]:
            continue
        unreached[root] = False
        frontier = [root]
        while frontier:
            node = frontier.pop()
            rest = np.flatnonzero(unreached)
            agreement = np.count_nonzero(signatures[rest] == signatures[node], axis=1) / signatures.shape[1]
            found = rest[agreement >= threshold]
            unreached[found] = False
            edges += [(ids[node], ids[f]) for f in found.tolist()]
            frontier += found.tolist()
    return edges


class _SignBatch(beam.DoFn):
    """A batch of rows -> (ids, signatures[rows, num_perm]): signed together, MinHash's permutations built once."""

    def __init__(self, params: NearDedupConfig):
        self.params = params

    def setup(self):
        self.signer = Signer(self.params)

    def process(self, rows):
        ids = np.array([r["candidate_id"] for r in rows], dtype=object)
        yield ids, np.stack([self.signer.signature(r["text"]) for r in rows])


def _band_entries(signed, bands: int):
    """((band, band key), id) for every row and band: a bucket is a key."""
    ids, signatures = signed
    keys = band_hashes(signatures, bands)
    for row, candidate_id in enumerate(ids.tolist()):
        for band in range(bands):
            yield (band, int(keys[row, band])), candidate_id


def _of(kind: str):
    return lambda item: item[0] == kind


def _signature_to(joined, to: str):
    """(id, {to: [keys...], signature: [its]}) -> (key, (id, its signature)) for each key it is joined to: the other
    id of each pair it begins, or each large bucket it is in."""
    node, grouped = joined
    for signature in grouped["signature"]:
        for key in grouped[to]:
            yield key, (node, signature)


def _confirmed(joined, threshold: float):
    """(b, {half: [(a, a's signature)...], signature: [b's]}) -> (a, b) where the estimated Jaccard reaches it."""
    second, grouped = joined
    for signature in grouped["signature"]:
        for first, first_signature in grouped["half"]:
            if estimated_jaccard(first_signature, signature) >= threshold:
                yield first, second


def _large_bucket_edges(bucket, threshold: float):
    _, members = bucket
    members = sorted(members, key=lambda m: m[0])
    return spanning_edges([m for m, _ in members], np.stack([s for _, s in members]), threshold)


class NearDuplicateEdges(beam.PTransform):
    """Rows with `candidate_id` and `text` -> (id, id) pairs of near-duplicates.

    Rows are signed in batches. Each row's band keys are grouped by (band, key), one bucket per group. The pairs
    of a bucket meet their two signatures by joins on the ids (CoGroupByKey), and a bucket too large to pair off
    meets its members' signatures the same way, so no worker holds the signatures of the corpus.
    """

    def __init__(self, params: NearDedupConfig, batch_size: int = 2048):
        super().__init__()
        self.params = params
        self.batch_size = batch_size

    def expand(self, rows):
        bands, threshold = self.params.bands, self.params.threshold
        signed = (
            rows
            | "Batch" >> beam.BatchElements(min_batch_size=self.batch_size, max_batch_size=self.batch_size)
            | "Sign" >> beam.ParDo(_SignBatch(self.params))
        )
        signatures = signed | "SignatureById" >> beam.FlatMap(lambda batch: zip(batch[0].tolist(), batch[1]))
        work = (
            signed
            | "BandKeys" >> beam.FlatMap(_band_entries, bands=bands)
            | "GroupByBucket" >> beam.GroupByKey()
            | "BucketWork" >> beam.FlatMap(bucket_work)
        )
        pairs = work | "Pairs" >> beam.Filter(_of("pair")) | "PairIds" >> beam.Values() | "DistinctPairs" >> beam.Distinct()
        halves = ({"pair": pairs, "signature": signatures} | "JoinFirst" >> beam.CoGroupByKey()
                  | "PairHalves" >> beam.FlatMap(_signature_to, to="pair"))
        confirmed = ({"half": halves, "signature": signatures} | "JoinSecond" >> beam.CoGroupByKey()
                     | "Confirm" >> beam.FlatMap(_confirmed, threshold=threshold))
        members = work | "LargeBuckets" >> beam.Filter(_of("member")) | "MemberIds" >> beam.Values()
        large = ({"bucket": members, "signature": signatures} | "JoinMembers" >> beam.CoGroupByKey()
                 | "MembersSigned" >> beam.FlatMap(_signature_to, to="bucket")
                 | "GroupLargeBucket" >> beam.GroupByKey()
                 | "CompareInPlace" >> beam.FlatMap(_large_bucket_edges, threshold=threshold))
        return (confirmed, large) | "AllEdges" >> beam.Flatten()


class NearDedup(beam.PTransform):
    """Rows -> tagged outputs `kept` (one per near-duplicate cluster) and `rejected` (near_duplicate)."""

    def __init__(self, params: NearDedupConfig):
        super().__init__()
        self.params = params

    def expand(self, rows):
        edges = rows | "Edges" >> NearDuplicateEdges(self.params)
        return (rows, edges) | "KeepOnePerCluster" >> KeepOnePerCluster(NEAR_DUPLICATE)


def near_dedup(plan):
    cfg = plan.config.near_dedup
    return NearDedup(cfg) if cfg.enabled and plan.config.control != "no_filter" else None


STEP = SetStep("near dedup", (NEAR_DUPLICATE,), near_dedup, NearDedupConfig, "near_dedup")
