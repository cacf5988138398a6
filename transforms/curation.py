"""The curation chain: screen by judgments and policy, drop exact duplicates, cap per prompt.

Every candidate leaves exactly once: as a kept shard row, or as a rejected row with a reason.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

import apache_beam as beam

from transforms.hf_generation import PROMPT_TOO_LONG
from transforms.judging import judgment_error

REJECTED = "rejected"

# Rejection reasons, in the order the chain applies them.
UNJUDGED = "unjudged"
JUDGE_ERROR = "judge_error"
EMPTY = "empty"
UNVERIFIABLE = "unverifiable"
TRUNCATED = "truncated"
BELOW_THRESHOLD = "below_threshold"
DUPLICATE = "duplicate"
OVER_PROMPT_CAP = "over_prompt_cap"
REASONS = (UNJUDGED, JUDGE_ERROR, PROMPT_TOO_LONG, EMPTY, UNVERIFIABLE, TRUNCATED, BELOW_THRESHOLD, DUPLICATE,
           OVER_PROMPT_CAP)


@dataclass(frozen=True)
class Policy:
    min_score: float
    drop_truncated: bool
    max_per_prompt: int

    def describe(self) -> str:
        return f"score>={self.min_score}" + (", not truncated" if self.drop_truncated else "")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return re.sub(r"\s+", " ", text).strip()


def text_hash(text: str) -> str:
    return hashlib.sha256(normalize(text).encode()).hexdigest()


def _judgment_struct(j: dict) -> dict:
    return {k: j[k] for k in ("judge", "score", "passed", "detail")}


def assemble(joined: tuple, prompts: dict) -> dict:
    """Joins one candidate with its judgments and its prompt's fields."""
    candidate_id, grouped = joined
    candidates = list(grouped["candidates"])
    if len(candidates) != 1:
        raise ValueError(f"candidate id {candidate_id} appears {len(candidates)} times in the candidates")
    candidate = candidates[0]
    judgments = sorted(grouped["judgments"], key=lambda j: j["judge"])
    prompt = prompts.get(candidate["prompt_id"], {})
    return {
        **candidate,
        "messages": prompt.get("messages", []),
        "instruction_ids": prompt.get("instruction_ids", []),
        "kwargs": prompt.get("kwargs", []),
        "judgments": [_judgment_struct(j) for j in judgments],
        "score": min((j["score"] for j in judgments), default=0.0),
    }


def screen_reason(row: dict, policy: Policy) -> str | None:
    if not row["judgments"]:
        return UNJUDGED
    if any(judgment_error(j) for j in row["judgments"]):
        return JUDGE_ERROR
    if row["finish_reason"] == PROMPT_TOO_LONG:
        return PROMPT_TOO_LONG
    if not row["text"].strip():
        return EMPTY
    if not row["instruction_ids"]:
        return UNVERIFIABLE
    if policy.drop_truncated and row["finish_reason"] == "length":
        return TRUNCATED
    if row["score"] < policy.min_score:
        return BELOW_THRESHOLD
    return None


def rejection(row: dict, reason: str) -> dict:
    drop = ("messages", "instruction_ids", "kwargs")
    return {**{k: v for k, v in row.items() if k not in drop}, "reason": reason}


class Screen(beam.DoFn):
    def __init__(self, policy: Policy):
        self.policy = policy

    def process(self, row):
        reason = screen_reason(row, self.policy)
        if reason:
            yield beam.pvalue.TaggedOutput(REJECTED, rejection(row, reason))
        else:
            yield row


def _preference(row: dict):
    return (-row["score"], row["candidate_id"])


def keep_one_per_text(digest: str, rows):
    """Keeps the best of rows whose normalized text is identical; the rest are duplicates."""
    rows = sorted(rows, key=_preference)
    yield {**rows[0], "text_sha256": digest, "dedup_cluster": digest, "dedup_cluster_size": len(rows)}
    for row in rows[1:]:
        yield beam.pvalue.TaggedOutput(REJECTED, rejection(row, DUPLICATE))


class CapPerPrompt(beam.DoFn):
    """Keeps a prompt's best `max_per_prompt` rows; the rest are over the cap."""

    def __init__(self, max_per_prompt: int, keep_reason: str):
        self.max_per_prompt, self.keep_reason = max_per_prompt, keep_reason

    def process(self, keyed):
        _, rows = keyed
        rows = sorted(rows, key=_preference)
        for row in rows[: self.max_per_prompt]:
            yield {**row, "keep_reason": self.keep_reason}
        for row in rows[self.max_per_prompt :]:
            yield beam.pvalue.TaggedOutput(REJECTED, rejection(row, OVER_PROMPT_CAP))


class Curate(beam.PTransform):
    """(candidates, judgments) -> tagged outputs `kept` and `rejected`."""

    def __init__(self, policy: Policy):
        super().__init__()
        self.policy = policy

    def expand(self, inputs):
        candidates, judgments, prompts = inputs
        prompts_by_id = beam.pvalue.AsDict(prompts | "KeyPrompts" >> beam.Map(lambda p: (p["prompt_id"], p)))
        joined = (
            {
                "candidates": candidates | "KeyCandidates" >> beam.Map(lambda c: (c["candidate_id"], c)),
                "judgments": judgments | "KeyJudgments" >> beam.Map(lambda j: (j["candidate_id"], j)),
            }
            | "Join" >> beam.CoGroupByKey()
            | "SkipOrphanJudgments" >> beam.Filter(lambda kv: len(kv[1]["candidates"]) > 0)
            | "Assemble" >> beam.Map(assemble, prompts=prompts_by_id)
        )
        screened = joined | "Screen" >> beam.ParDo(Screen(self.policy)).with_outputs(REJECTED, main="ok")
        deduped = (
            screened.ok
            | "KeyByText" >> beam.Map(lambda r: (text_hash(r["text"]), r))
            | "GroupByText" >> beam.GroupByKey()
            | "KeepOnePerText" >> beam.FlatMapTuple(keep_one_per_text).with_outputs(REJECTED, main="ok")
        )
        capped = (
            deduped.ok
            | "KeyByPrompt" >> beam.Map(lambda r: (r["prompt_id"], r))
            | "GroupByPrompt" >> beam.GroupByKey()
            | "CapPerPrompt" >> beam.ParDo(CapPerPrompt(self.policy.max_per_prompt, f"passed {self.policy.describe()}"))
            .with_outputs(REJECTED, main="ok")
        )
        rejected = (screened[REJECTED], deduped[REJECTED], capped[REJECTED]) | "AllRejected" >> beam.Flatten()
        return {"kept": capped.ok, "rejected": rejected}
