"""The curation chain as one Beam composite.

join -> the steps of `chain.CHAIN`, in order; preference pairs are drawn on the side from what the
first row filters saw. Every candidate leaves exactly once: as a kept row, or as a rejected row with
a reason. What is met but is no candidate's rejection (a judgment without its candidate, an answer truncated for embedding) is
counted in `notes` (transforms/curation/notes.py)."""

from __future__ import annotations

from typing import cast

import apache_beam as beam

from schemas.records import VERDICT_FIELDS, JudgedRow
from transforms.curation.chain import CHAIN
from transforms.curation.notes import JUDGMENTS_WITHOUT_CANDIDATE, NOTES, SummarizeNotes
from transforms.curation.plan import CurationPlan
from transforms.curation.preference_pairs import preference_pair
from transforms.curation.rejections import REJECTED, rejected
from transforms.curation.steps import RowFilter
from transforms.curation.tally import CANDIDATES, JUDGMENTS, KEPT, REJECTED_ROWS, Tally

PAIR_POOL = "pair_pool"


def by_prompt(joined: tuple) -> tuple[str, tuple[dict, list]]:
    """A candidate joined with its judgments -> (its prompt's id, (the candidate, its judgments)), for the join
    with the prompts."""
    candidate_id, grouped = joined
    candidates = list(grouped["candidates"])
    if len(candidates) != 1:
        raise ValueError(f"candidate id {candidate_id} appears {len(candidates)} times in the candidates")
    return candidates[0]["prompt_id"], (candidates[0], list(grouped["judgments"]))


def with_prompt(joined: tuple, policy):
    """(prompt id, {judged: its (candidate, judgments), prompt: [the prompt] or []}) -> judged rows."""
    _, grouped = joined
    prompt: dict = next(iter(grouped["prompt"]), {})
    for candidate, judgments in grouped["judged"]:
        yield assemble(candidate, judgments, prompt, policy)


def assemble(candidate: dict, judgments: list, prompt: dict, policy) -> JudgedRow:
    """One candidate with its judgments, its prompt's fields and its combined score."""
    judgments = sorted(judgments, key=lambda j: j["judge"])
    by_judge = {j["judge"]: j for j in judgments}
    complete = all(n in by_judge for n in policy.gating())
    return cast(JudgedRow, {
        **candidate,
        "messages": prompt.get("messages", []),
        "instruction_ids": prompt.get("instruction_ids", []),
        "kwargs": prompt.get("kwargs", []),
        "judgments": [{k: j[k] for k in VERDICT_FIELDS} for j in judgments],
        "score": policy.combined_score(by_judge) if complete else 0.0,
    })


def split_orphans(joined: tuple):
    """A candidate with its judgments goes on; judgments whose candidate is missing become notes."""
    candidate_id, grouped = joined
    if grouped["candidates"]:
        yield joined
    else:
        for _ in grouped["judgments"]:
            yield beam.pvalue.TaggedOutput(NOTES, (JUDGMENTS_WITHOUT_CANDIDATE, candidate_id))


def first_failure(row: JudgedRow, checks) -> tuple[str, str] | None:
    for check in checks:
        if found := check(row):
            return found
    return None


class Screen(beam.DoFn):
    """Consecutive row filters in one pass: a row is rejected with the first reason it fails. With
    `pair_pool`, every row also goes to that output with its reason (None when it passed)."""

    def __init__(self, checks, pair_pool: bool):
        self.checks, self.pair_pool = checks, pair_pool

    def process(self, row):
        found = first_failure(row, self.checks)
        if self.pair_pool:
            yield beam.pvalue.TaggedOutput(PAIR_POOL, (row["prompt_id"], (row, found[0] if found else None)))
        if found:
            yield rejected(row, *found)
        else:
            yield row


def _runs(chain):
    """The chain cut into runs of consecutive row filters (lists) and single set steps."""
    runs: list = []
    for step in chain:
        if isinstance(step, RowFilter) and runs and isinstance(runs[-1], list):
            runs[-1].append(step)
        else:
            runs.append([step] if isinstance(step, RowFilter) else step)
    return runs


def _step_outputs(result) -> tuple:
    """A set step's (kept, rejected, notes or None): from a (kept, rejected) pair, or from outputs
    `kept`, `rejected` and, optionally, `notes`."""
    if isinstance(result, tuple):
        return (*result, None)
    notes = result[NOTES] if isinstance(result, dict) and NOTES in result else None
    return result["kept"], result[REJECTED], notes


class JoinJudged(beam.PTransform):
    """(candidates, judgments, prompts) -> {"rows": judged rows (assemble), NOTES: judgments without a candidate}."""

    def __init__(self, policy):
        super().__init__()
        self.policy = policy

    def expand(self, inputs):
        candidates, judgments, prompts = inputs
        joined = (
            {
                "candidates": candidates | "KeyCandidates" >> beam.Map(lambda c: (c["candidate_id"], c)),
                "judgments": judgments | "KeyJudgments" >> beam.Map(lambda j: (j["candidate_id"], j)),
            }
            | "Join" >> beam.CoGroupByKey()
            | "SplitOrphanJudgments" >> beam.FlatMap(split_orphans).with_outputs(NOTES, main="joined")
        )
        rows = (
            {"judged": joined.joined | "KeyByPrompt" >> beam.Map(by_prompt),
             "prompt": prompts | "KeyPrompts" >> beam.Map(lambda p: (p["prompt_id"], p))}
            | "JoinPrompts" >> beam.CoGroupByKey()
            | "Assemble" >> beam.FlatMap(with_prompt, policy=self.policy)
        )
        return {"rows": rows, NOTES: joined[NOTES]}


class Curate(beam.PTransform):
    """(candidates, judgments, prompts) -> {"kept", "rejected", "pairs", "notes", "counts"}; `notes` is one
    dict (notes.SummarizeNotes), `counts` one Counter (tally.Tally)."""

    def __init__(self, plan: CurationPlan):
        super().__init__()
        self.plan = plan

    def expand(self, inputs):
        plan = self.plan
        joined = inputs | "JoinJudged" >> JoinJudged(plan.config)
        rows = joined["rows"]
        rejections, notes, pair_pool = [], [joined[NOTES]], None
        for run in _runs(CHAIN):
            if isinstance(run, list):
                checks = [check for step in run if (check := step.build(plan)) is not None]
                label = " + ".join(step.name for step in run)
                screened = rows | label >> beam.ParDo(Screen(checks, pair_pool is None)).with_outputs(
                    REJECTED, PAIR_POOL, main="kept")
                pair_pool = screened[PAIR_POOL] if pair_pool is None else pair_pool
                rows, dropped = screened.kept, screened[REJECTED]
            else:
                transform = run.build(plan)
                if transform is None:
                    continue
                rows, dropped, noted = _step_outputs(rows | run.name >> transform)
                if noted is not None:
                    notes.append(noted)
            rejections.append(dropped)
        keep_reason = plan.keep_reason()
        kept = rows | "KeepReason" >> beam.Map(lambda r: {**r, "keep_reason": keep_reason})
        every_rejected = rejections | "AllRejected" >> beam.Flatten()
        candidates, judgments, _ = inputs
        outputs = {"kept": kept, "rejected": every_rejected,
                   "notes": notes | "AllNotes" >> beam.Flatten() | "SummarizeNotes" >> SummarizeNotes(),
                   "counts": {CANDIDATES: candidates, JUDGMENTS: judgments, KEPT: kept, REJECTED_ROWS: every_rejected}
                   | "Tally" >> Tally()}
        if plan.config.pairs.enabled and pair_pool is not None:
            outputs["pairs"] = (
                pair_pool
                | "GroupPairPool" >> beam.GroupByKey()
                | "PreferencePairs" >> beam.FlatMap(
                    lambda kv, margin: preference_pair(kv[0], kv[1], margin), margin=plan.config.pairs.min_margin)
            )
        return outputs
