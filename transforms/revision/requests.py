"""Revision requests: the original conversation, the failed answer and the feedback turn, with seeded ids
derived from the parent candidate; and the revised answers as candidate records of the ORIGINAL prompt."""

from __future__ import annotations

from typing import cast

from schemas.reasons import REVISED
from schemas.records import Candidate, JudgedRow
from transforms.generation.candidates import Lineage, candidate_id, candidate_seed, to_candidate
from transforms.generation.hf_generation import Generation, GenerationRequest
from transforms.revision.feedback import feedback_turn


def revision_key(parent_id: str) -> str:
    """What a revision's seed and id hash in place of a prompt id: never a prompt id, so never a sampled id."""
    return f"revision of {parent_id}"


def expand_failure(row: JudgedRow, k: int, lineage: Lineage):
    """Yields (meta, request) for K revisions of one failed answer; meta rides along through RunInference."""
    parent = row["candidate_id"]
    messages = (*((m["role"], m["content"]) for m in row["messages"]), ("assistant", row["text"]),
                ("user", feedback_turn(row)))
    for index in range(k):
        seed = candidate_seed(lineage.seed, lineage.iteration, revision_key(parent), index)
        cid = candidate_id(revision_key(parent), lineage.model_sha256, index, seed)
        meta = {"candidate_id": cid, "prompt_id": row["prompt_id"], "sample_index": index, "seed": seed,
                "parent_candidate_id": parent, "generation_round": row["generation_round"]}
        yield meta, GenerationRequest(key=cid, messages=messages, seed=seed)


def to_revised_candidate(meta: dict, generation: Generation, lineage: Lineage) -> Candidate:
    """A candidate answering the original prompt (a training row is prompt -> revised answer, single turn)."""
    return cast(Candidate, {**to_candidate(meta, generation, lineage), "origin": REVISED,
                            "parent_candidate_id": meta["parent_candidate_id"]})
