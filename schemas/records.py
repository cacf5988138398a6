"""Record types of the pipeline: one TypedDict per record, and the pyarrow schema derived from it.

Python types map to Arrow as str -> string, bool -> bool, int -> int32, float -> float32, lists
and nested TypedDicts to lists and structs; `Annotated[int, pa.int64()]` overrides the mapping.
Constraint kwargs are heterogeneous per instruction, so each is stored as a JSON string, aligned
with `instruction_ids`.
"""

from __future__ import annotations

import typing
from typing import Annotated, TypedDict

import pyarrow as pa


class Message(TypedDict):
    role: str
    content: str


class Prompt(TypedDict):
    prompt_id: str
    messages: list[Message]
    instruction_ids: list[str]
    kwargs: list[str]
    source: str
    split: str
    metadata: str  # JSON object of the prompt file's own fields (e.g. a reference answer) for custom judges


class Candidate(TypedDict):
    candidate_id: str
    prompt_id: str
    text: str
    model: str
    model_sha256: str
    iteration: int
    sample_index: int
    seed: Annotated[int, pa.int64()]
    temperature: float
    top_p: float
    max_new_tokens: int
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # schemas.reasons.FINISH_REASONS
    origin: str  # schemas.reasons.ORIGINS: how the answer came to be
    parent_candidate_id: str  # the candidate it was made from ("" for a sampled one)
    generation_round: int  # the generate round that made it: 1, or later rounds of generate.budget adaptive


class Verdict(TypedDict):
    """One judge's verdict on a candidate, as a shard row carries it."""

    judge: str
    score: float  # in [0, 1]
    passed: bool
    detail: str  # JSON; an `error` key marks a candidate the judge could not score


class Judgment(TypedDict):
    candidate_id: str
    judge: str
    score: float
    passed: bool
    detail: str


class JudgedRow(Candidate):
    """A candidate joined with its prompt and its judgments, as curation passes it from step to step."""

    messages: list[Message]
    instruction_ids: list[str]
    kwargs: list[str]
    judgments: list[Verdict]
    score: float  # the judge policy's combined score


class ShardRow(JudgedRow):
    text_sha256: str
    keep_reason: str
    dedup_cluster: str
    dedup_cluster_size: int


class RejectedRow(Candidate):
    judgments: list[Verdict]
    score: float
    reason: str  # schemas.reasons
    reason_detail: str


class Pair(TypedDict):
    """A preference pair in TRL's conversational form: `prompt` messages, one-message `chosen` / `rejected`."""

    pair_id: str
    prompt_id: str
    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]
    chosen_candidate_id: str
    rejected_candidate_id: str
    chosen_score: float
    rejected_score: float
    margin: float
    rejected_reason: str


class EvalResult(TypedDict):
    prompt_id: str
    split: str
    text: str
    completion_tokens: int
    finish_reason: str
    language: str  # detected in the answer ("" when undetectable); the health metrics compare it
    expected_language: str  # with the language the prompt asks for
    instruction_ids: list[str]
    strict: list[bool]  # the IFEval verifier's, per instruction; empty for a set another judge scores
    loose: list[bool]
    error: str  # null, or the exception a check raised ("Type: message"); strict and loose are then all False
    judge: str  # the eval set's judge (evaluate.sets; the verifier for eval and eval_ood)
    score: float  # its score in [0, 1]
    passed: bool  # what the set's accuracy counts (the verifier: every instruction followed strictly)
    detail: str  # JSON of the judge's detail


_SCALARS = {str: pa.string(), bool: pa.bool_(), int: pa.int32(), float: pa.float32()}


def arrow_type(hint) -> pa.DataType:
    if typing.get_origin(hint) is Annotated:
        return typing.get_args(hint)[1]
    if typing.get_origin(hint) is list:
        return pa.list_(arrow_type(typing.get_args(hint)[0]))
    if typing.is_typeddict(hint):
        return pa.struct(arrow_fields(hint))
    return _SCALARS[hint]


def arrow_fields(record: type) -> list[tuple[str, pa.DataType]]:
    return [(name, arrow_type(hint)) for name, hint in typing.get_type_hints(record, include_extras=True).items()]


def arrow_schema(record: type) -> pa.Schema:
    return pa.schema(arrow_fields(record))


VERDICT_FIELDS = tuple(typing.get_type_hints(Verdict))
MESSAGE = arrow_type(Message)
PROMPT = arrow_schema(Prompt)
CANDIDATE = arrow_schema(Candidate)
JUDGMENT = arrow_schema(Judgment)
JUDGMENT_STRUCT = arrow_type(Verdict)
SHARD_ROW = arrow_schema(ShardRow)
REJECTED_ROW = arrow_schema(RejectedRow)
PAIR = arrow_schema(Pair)
EVAL_RESULT = arrow_schema(EvalResult)
