"""The candidates a judge model that does not decide scores: a sample stratified by the verifier's verdict.

A judge model of weight 0 is there to be calibrated, and calibration does not need every candidate
(`calibration_sample` in its params). The sample takes half its size from the candidates the verifier
passed and half from those it failed: ROC AUC does not depend on the classes' proportions, and equal
classes give it the narrowest interval. A class short of its half leaves the rest to the other class,
then to the candidates the verifier could not label (no constraints to check, or an error), so a task
without verifier labels still gets its sample. Within a stratum the candidates with the smallest seeded
hash of their id go first, so the sample depends only on the candidates and the seed, never on which
shards a run judges.
"""

from __future__ import annotations

import hashlib

import apache_beam as beam

from schemas.records import Candidate, Prompt
from transforms.judges.contract import Check

PASSED, FAILED, UNLABELED = "passed", "failed", "unlabeled"
STRATA = (PASSED, FAILED, UNLABELED)


def priority(candidate_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{candidate_id}".encode()).digest()[:8], "big")


def stratum(candidate: Candidate, prompt: Prompt | None, verify: Check) -> str:
    """The candidate's stratum: the verifier's verdict on it to its prompt, when it gives a calibration label."""
    if prompt is None or not prompt["instruction_ids"]:
        return UNLABELED
    result = verify(candidate, prompt)
    return UNLABELED if result.error else PASSED if result.passed else FAILED


def allocate(ranked: dict[str, list[str]], size: int) -> dict[str, list[str]]:
    """{stratum: the ids sampled from it}, from each stratum's ids in priority order (at least `size` of each,
    or all it has)."""
    quota = {PASSED: size - size // 2, FAILED: size // 2}
    take = {s: min(len(ranked.get(s, [])), quota[s]) for s in quota}
    spare = size - sum(take.values())
    for s in (PASSED, FAILED, UNLABELED):
        extra = min(spare, len(ranked.get(s, [])) - take.get(s, 0))
        take[s] = take.get(s, 0) + extra
        spare -= extra
    return {s: ranked.get(s, [])[: take[s]] for s in STRATA}


class CalibrationSample(beam.PTransform):
    """(candidate, its prompt or None) pairs in (prompt_join.WithPrompts); one element out: {size: the frozenset of
    ids sampled at that size} for each size asked."""

    def __init__(self, sizes: list[int], verify: Check, seed: int):
        super().__init__()
        self.sizes, self.verify, self.seed = sorted(set(sizes)), verify, seed

    def expand(self, candidates):
        verify, seed, sizes = self.verify, self.seed, self.sizes
        return (
            candidates
            | "Stratum" >> beam.MapTuple(lambda c, prompt: (stratum(c, prompt, verify),
                                                             (priority(c["candidate_id"], seed), c["candidate_id"])))
            | "FirstOfEach" >> beam.combiners.Top.SmallestPerKey(max(sizes))
            | "Ranked" >> beam.combiners.ToDict()
            | "Allocate" >> beam.Map(lambda ranked: {
                size: frozenset(cid for ids in allocate({s: [cid for _, cid in r] for s, r in ranked.items()},
                                                        size).values() for cid in ids)
                for size in sizes})
        )
