"""Test records from one factory: every field of a record type in schemas/records.py, at a plain value unless
named. A field added to a record type reaches every test record at once."""

from __future__ import annotations

import typing

from schemas.records import Candidate, ShardRow
from transforms.text_normalization import text_hash

PLAIN = {str: "", int: 0, float: 0.0, bool: False}


def record(kind: type, **fields) -> dict:
    """A `kind` record: the given fields, every other at its plain value (lists empty)."""
    hints = typing.get_type_hints(kind)
    if unknown := sorted(set(fields) - set(hints)):
        raise TypeError(f"{kind.__name__} has no field {', '.join(unknown)}")
    return {name: fields[name] if name in fields else PLAIN.get(hint, []) for name, hint in hints.items()}


def candidate(candidate_id: str, prompt: dict, text: str, **fields) -> dict:
    """A sampled candidate of `prompt`, as generate writes one."""
    sampled = {"model": "m", "model_sha256": "0" * 64, "iteration": 1, "seed": 1, "temperature": 0.8, "top_p": 0.95,
               "max_new_tokens": 32, "prompt_tokens": 5, "completion_tokens": 5, "finish_reason": "stop",
               "origin": "sampled", "generation_round": 1}
    return record(Candidate, candidate_id=candidate_id, prompt_id=prompt["prompt_id"], text=text, **{**sampled, **fields})


def shard_row(candidate_id: str, prompt: dict, text: str, score: float = 1.0, **fields) -> dict:
    """A kept row of `prompt`, passed by the verifier with `score`."""
    row = candidate(candidate_id, prompt, text, **fields)
    return record(ShardRow, **row, messages=prompt["messages"], instruction_ids=prompt["instruction_ids"],
                  kwargs=prompt["kwargs"], score=score, text_sha256=text_hash(text), keep_reason="passed",
                  judgments=[{"judge": "ifeval_verifier", "score": score, "passed": score == 1.0, "detail": "{}"}],
                  dedup_cluster=text_hash(text), dedup_cluster_size=1)
