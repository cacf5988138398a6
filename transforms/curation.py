"""The curation chain as one Beam composite.

join -> screen (unscorable, heuristics, decontamination, judge policy) -> exact dedup -> near dedup
-> semantic dedup (optional) -> selection; preference pairs are drawn from the screened candidates on the side. Every candidate
leaves exactly once: as a kept row, or as a rejected row with a reason (see `rejections`).

The ablation controls replace the filter with a random sample of a fixed size: `no_filter` skips the
heuristics, judge policy, near/semantic dedup and selection; `random_judge` skips the judge policy and
selection only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import apache_beam as beam

from transforms.clusters import preference
from transforms.decontamination import contamination
from transforms.heuristics import HEURISTICS, REASON_OF
from transforms.hf_generation import PROMPT_TOO_LONG
from transforms.judge_names import VERIFIER
from transforms.judging import judgment_error
from transforms.near_dedup import MinHashParams, NearDedup
from transforms.preference_pairs import preference_pair
from transforms.rejections import (
    BELOW_THRESHOLD,
    CONTAMINATED,
    DUPLICATE,
    EMPTY,
    JUDGE_ERROR,
    NOT_SAMPLED,
    REJECTED,
    UNJUDGED,
    UNVERIFIABLE,
    rejected,
)
from transforms.selection import Select, SelectionPolicy
from transforms.semantic_dedup import SemanticDedup, SemanticDedupParams
from transforms.text_normalization import text_hash

PAIR_POOL = "pair_pool"


@dataclass(frozen=True)
class JudgePolicy:
    """How the scoring judges' judgments combine: `all_pass` (every weighted judge passed) or
    `weighted` (the weighted mean score reaches `min_score`). Judges of weight 0 are only recorded."""

    combine: str
    weights: dict[str, float]
    min_score: float = 0.5

    def gating(self) -> list[str]:
        return sorted(name for name, w in self.weights.items() if w > 0)

    def combined_score(self, by_judge: dict[str, dict]) -> float:
        gating = self.gating()
        total = sum(self.weights[n] for n in gating)
        return sum(self.weights[n] * by_judge[n]["score"] for n in gating) / total

    def passes(self, by_judge: dict[str, dict]) -> bool:
        if self.combine == "all_pass":
            return all(by_judge[n]["passed"] for n in self.gating())
        return self.combined_score(by_judge) >= self.min_score

    def describe(self) -> str:
        weights = ", ".join(f"{n}×{self.weights[n]:g}" for n in self.gating())
        return f"all of {weights} passed" if self.combine == "all_pass" else f"weighted({weights}) >= {self.min_score}"


@dataclass(frozen=True)
class Decontamination:
    index: dict = field(default_factory=dict)  # n-gram hash -> eval source label
    ngram: int = 13


def _judgment_struct(j: dict) -> dict:
    return {k: j[k] for k in ("judge", "score", "passed", "detail")}


def assemble(joined: tuple, prompts: dict, policy: JudgePolicy) -> dict:
    """Joins one candidate with its judgments, its prompt's fields and its combined score."""
    candidate_id, grouped = joined
    candidates = list(grouped["candidates"])
    if len(candidates) != 1:
        raise ValueError(f"candidate id {candidate_id} appears {len(candidates)} times in the candidates")
    judgments = sorted(grouped["judgments"], key=lambda j: j["judge"])
    by_judge = {j["judge"]: j for j in judgments}
    complete = all(n in by_judge for n in policy.gating())
    prompt = prompts.get(candidates[0]["prompt_id"], {})
    return {
        **candidates[0],
        "messages": prompt.get("messages", []),
        "instruction_ids": prompt.get("instruction_ids", []),
        "kwargs": prompt.get("kwargs", []),
        "judgments": [_judgment_struct(j) for j in judgments],
        "score": policy.combined_score(by_judge) if complete else 0.0,
        "policy_passed": complete and policy.passes(by_judge),
        "judges_complete": complete,
    }


def screen_reason(row: dict, policy: JudgePolicy, decontamination: Decontamination | None,
                  control: str = "none") -> tuple[str, str] | None:
    """The first filter a row fails, as (reason, detail), or None when it passes them all."""
    if not row["judges_complete"]:
        missing = sorted(set(policy.gating()) - {j["judge"] for j in row["judgments"]})
        return UNJUDGED, f"no judgment from {', '.join(missing)}"
    if row["finish_reason"] == PROMPT_TOO_LONG:
        return PROMPT_TOO_LONG, f"{row['prompt_tokens']} prompt tokens"
    if not row["text"].strip():
        return EMPTY, ""
    for j in row["judgments"]:
        if error := judgment_error(j):
            return JUDGE_ERROR, f"{j['judge']}: {error}"
    by_judge = {j["judge"]: j for j in row["judgments"]}
    for h in HEURISTICS if control != "no_filter" else ():
        j = by_judge.get(h.judge)
        if j is not None and not j["passed"]:
            return REASON_OF[h.judge], j["detail"]
    if decontamination and (source := contamination(row["text"], decontamination.index, decontamination.ngram)):
        return CONTAMINATED, f"shares a {decontamination.ngram}-gram with {source}"
    if control != "none":
        return None
    if VERIFIER in policy.gating() and not row["instruction_ids"]:
        return UNVERIFIABLE, "prompt has no verifiable constraints"
    if not row["policy_passed"]:
        return BELOW_THRESHOLD, json.dumps({n: by_judge[n]["score"] for n in policy.gating()}, sort_keys=True)
    return None


def _clean(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("policy_passed", "judges_complete")}


class Screen(beam.DoFn):
    def __init__(self, policy: JudgePolicy, decontamination: Decontamination | None, control: str = "none"):
        self.policy, self.decontamination, self.control = policy, decontamination, control

    def process(self, row):
        found = screen_reason(row, self.policy, self.decontamination, self.control)
        row = _clean(row)
        yield beam.pvalue.TaggedOutput(PAIR_POOL, (row["prompt_id"], (row, found[0] if found else None)))
        if found:
            yield rejected(row, *found)
        else:
            yield row


def keep_one_per_text(digest: str, rows):
    """Keeps the best of rows whose normalized text is identical; the rest are duplicates."""
    rows = sorted(rows, key=preference)
    yield {**rows[0], "text_sha256": digest, "dedup_cluster": rows[0]["candidate_id"], "dedup_cluster_size": len(rows)}
    for row in rows[1:]:
        yield rejected(row, DUPLICATE, f"same text as kept {rows[0]['candidate_id']}")


@dataclass(frozen=True)
class CurationPlan:
    judges: JudgePolicy
    selection: SelectionPolicy
    near_dedup: MinHashParams | None = None
    semantic_dedup: SemanticDedupParams | None = None
    decontamination: Decontamination | None = None
    pairs_min_margin: float | None = None  # None: no preference pairs
    control: str = "none"  # see the module docstring
    control_rows: int = 0
    control_seed: int = 0

    def keep_reason(self) -> str:
        if self.control != "none":
            return f"control {self.control}: random sample of {self.control_rows}"
        return f"passed {self.judges.describe()}; {self.selection.describe()}"


def sample_key(seed: int, candidate_id: str) -> str:
    return hashlib.sha256(f"{seed}|{candidate_id}".encode()).hexdigest()


def random_sample(rows: list[dict], rows_wanted: int, seed: int):
    """Keeps `rows_wanted` rows chosen uniformly at random (fixed by the seed); the rest are not sampled."""
    rows = sorted(rows, key=lambda r: sample_key(seed, r["candidate_id"]))
    yield from rows[:rows_wanted]
    for row in rows[rows_wanted:]:
        yield rejected(row, NOT_SAMPLED, f"outside a random sample of {rows_wanted} of {len(rows)}")


class Curate(beam.PTransform):
    """(candidates, judgments, prompts) -> {"kept", "rejected", "pairs"}."""

    def __init__(self, plan: CurationPlan):
        super().__init__()
        self.plan = plan

    def expand(self, inputs):
        candidates, judgments, prompts = inputs
        plan = self.plan
        prompts_by_id = beam.pvalue.AsDict(prompts | "KeyPrompts" >> beam.Map(lambda p: (p["prompt_id"], p)))
        joined = (
            {
                "candidates": candidates | "KeyCandidates" >> beam.Map(lambda c: (c["candidate_id"], c)),
                "judgments": judgments | "KeyJudgments" >> beam.Map(lambda j: (j["candidate_id"], j)),
            }
            | "Join" >> beam.CoGroupByKey()
            | "SkipOrphanJudgments" >> beam.Filter(lambda kv: len(kv[1]["candidates"]) > 0)
            | "Assemble" >> beam.Map(assemble, prompts=prompts_by_id, policy=plan.judges)
        )
        screened = joined | "Screen" >> beam.ParDo(Screen(plan.judges, plan.decontamination, plan.control)).with_outputs(
            REJECTED, PAIR_POOL, main="ok")
        exact = (
            screened.ok
            | "KeyByText" >> beam.Map(lambda r: (text_hash(r["text"]), r))
            | "GroupByText" >> beam.GroupByKey()
            | "KeepOnePerText" >> beam.FlatMapTuple(keep_one_per_text).with_outputs(REJECTED, main="kept")
        )
        rejections = [screened[REJECTED], exact[REJECTED]]
        rows = exact.kept
        if plan.near_dedup:
            near = rows | "NearDedup" >> NearDedup(plan.near_dedup)
            rows = near.kept
            rejections.append(near[REJECTED])
        if plan.semantic_dedup:
            semantic = rows | "SemanticDedup" >> SemanticDedup(plan.semantic_dedup)
            rows = semantic.kept
            rejections.append(semantic[REJECTED])
        if plan.control == "none":
            selected, selection_rejections = rows | "Select" >> Select(plan.selection)
        else:
            sampled = (
                rows
                | "GatherPool" >> beam.combiners.ToList()
                | "RandomSample" >> beam.FlatMap(random_sample, plan.control_rows, plan.control_seed)
                .with_outputs(REJECTED, main="kept")
            )
            selected, selection_rejections = sampled.kept, sampled[REJECTED]
        rejections.append(selection_rejections)
        keep_reason = plan.keep_reason()
        kept = selected | "KeepReason" >> beam.Map(lambda r: {**r, "keep_reason": keep_reason})
        outputs = {"kept": kept, "rejected": rejections | "AllRejected" >> beam.Flatten()}
        if plan.pairs_min_margin is not None:
            outputs["pairs"] = (
                screened[PAIR_POOL]
                | "GroupPairPool" >> beam.GroupByKey()
                | "PreferencePairs" >> beam.FlatMap(
                    lambda kv, margin: preference_pair(kv[0], kv[1], margin), margin=plan.pairs_min_margin)
            )
        return outputs
