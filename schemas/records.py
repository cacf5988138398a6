"""Record types of the pipeline and their explicit pyarrow schemas.

Constraint kwargs are heterogeneous per instruction, so each is stored as a JSON string, aligned
with `instruction_ids`.
"""

from __future__ import annotations

import pyarrow as pa

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

PROMPT = pa.schema([
    ("prompt_id", pa.string()),
    ("messages", pa.list_(MESSAGE)),
    ("instruction_ids", pa.list_(pa.string())),
    ("kwargs", pa.list_(pa.string())),
    ("source", pa.string()),
    ("split", pa.string()),
])

_CANDIDATE_FIELDS = [
    ("candidate_id", pa.string()),
    ("prompt_id", pa.string()),
    ("text", pa.string()),
    ("model", pa.string()),
    ("model_sha256", pa.string()),
    ("iteration", pa.int32()),
    ("sample_index", pa.int32()),
    ("seed", pa.int64()),
    ("temperature", pa.float32()),
    ("top_p", pa.float32()),
    ("max_new_tokens", pa.int32()),
    ("prompt_tokens", pa.int32()),
    ("completion_tokens", pa.int32()),
    ("finish_reason", pa.string()),
]

CANDIDATE = pa.schema(_CANDIDATE_FIELDS)

JUDGMENT = pa.schema([
    ("candidate_id", pa.string()),
    ("judge", pa.string()),
    ("score", pa.float32()),
    ("passed", pa.bool_()),
    ("detail", pa.string()),
])

JUDGMENT_STRUCT = pa.struct([(f.name, f.type) for f in JUDGMENT if f.name != "candidate_id"])

SHARD_ROW = pa.schema(_CANDIDATE_FIELDS + [
    ("messages", pa.list_(MESSAGE)),
    ("instruction_ids", pa.list_(pa.string())),
    ("kwargs", pa.list_(pa.string())),
    ("judgments", pa.list_(JUDGMENT_STRUCT)),
    ("score", pa.float32()),
    ("text_sha256", pa.string()),
    ("keep_reason", pa.string()),
    ("dedup_cluster", pa.string()),
    ("dedup_cluster_size", pa.int32()),
])

REJECTED_ROW = pa.schema(_CANDIDATE_FIELDS + [
    ("judgments", pa.list_(JUDGMENT_STRUCT)),
    ("score", pa.float32()),
    ("reason", pa.string()),
    ("reason_detail", pa.string()),
])

# Preference pairs in TRL's conversational form: `prompt` messages, one-message `chosen` / `rejected`.
PAIR = pa.schema([
    ("pair_id", pa.string()),
    ("prompt_id", pa.string()),
    ("prompt", pa.list_(MESSAGE)),
    ("chosen", pa.list_(MESSAGE)),
    ("rejected", pa.list_(MESSAGE)),
    ("chosen_candidate_id", pa.string()),
    ("rejected_candidate_id", pa.string()),
    ("chosen_score", pa.float32()),
    ("rejected_score", pa.float32()),
    ("margin", pa.float32()),
    ("rejected_reason", pa.string()),
])

EVAL_RESULT = pa.schema([
    ("prompt_id", pa.string()),
    ("split", pa.string()),
    ("text", pa.string()),
    ("instruction_ids", pa.list_(pa.string())),
    ("strict", pa.list_(pa.bool_())),
    ("loose", pa.list_(pa.bool_())),
])
