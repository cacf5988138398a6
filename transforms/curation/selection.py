"""Selection, applied to rows that passed every filter: best-of-K per prompt, a cap per instruction
type, and the top fraction overall. Rows are ranked best first by `preference`. Off under the
ablation controls, which sample in its place.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import apache_beam as beam

from schemas.reasons import BELOW_TOP_FRACTION, OVER_PROMPT_CAP, OVER_TYPE_CAP
from transforms.curation.clusters import preference
from transforms.curation.rejections import REJECTED, rejected
from transforms.curation.steps import SetStep
from transforms.curation.top_fraction import TopFraction
from transforms.settings import require


@dataclass(frozen=True)
class SelectionPolicy:
    max_per_prompt: int = 2  # best-of-K: a prompt's best this many distinct answers
    max_per_instruction_type: int = 0  # balance: cap kept rows per instruction type (0: no cap)
    top_fraction: float = 1.0  # then keep the best this share overall

    def validate(self, where: str) -> None:
        require(self.max_per_prompt >= 1, f"{where}.max_per_prompt must be at least 1")
        require(self.max_per_instruction_type >= 0, f"{where}.max_per_instruction_type must be >= 0")
        require(0 < self.top_fraction <= 1, f"{where}.top_fraction must be in (0, 1]")

    def describe(self) -> str:
        parts = [f"best {self.max_per_prompt} per prompt"]
        if self.max_per_instruction_type:
            parts.append(f"at most {self.max_per_instruction_type} per instruction type")
        if self.top_fraction < 1:
            parts.append(f"top {self.top_fraction:g} overall")
        return ", ".join(parts)


def best_per_prompt(prompt_id: str, rows, k: int):
    rows = sorted(rows, key=preference)
    yield from rows[:k]
    for row in rows[k:]:
        yield rejected(row, OVER_PROMPT_CAP, f"prompt's best {k} kept")


def types_of(row: dict) -> list[str]:
    return row["instruction_ids"] or ["(none)"]


def balance_and_top(rows: list[dict], policy: SelectionPolicy):
    """Per-type cap, then the top fraction, over all rows at once.

    A row is kept while at least one of its instruction types is under the cap, and counts toward
    all of them: a row that carries a rare constraint is not lost because it also carries a common one.
    """
    rows = sorted(rows, key=preference)
    balanced = []
    kept_per_type: Counter = Counter()
    for row in rows:
        types = types_of(row)
        cap = policy.max_per_instruction_type
        if cap and all(kept_per_type[t] >= cap for t in types):
            yield over_type_cap(row, cap)
            continue
        kept_per_type.update(types)
        balanced.append(row)
    keep = math.ceil(len(balanced) * policy.top_fraction)
    for row in balanced[:keep]:
        yield row
    for row in balanced[keep:]:
        yield rejected(row, BELOW_TOP_FRACTION, f"outside the best {policy.top_fraction:g} of {len(balanced)}")


def over_type_cap(row: dict, cap: int):
    return rejected(row, OVER_TYPE_CAP, f"{', '.join(types_of(row))} already at {cap}")


class CapByType(beam.PTransform):
    """Rows -> (kept, rejected) exactly as balance_and_top over every row at once, without gathering them.

    Only a row among the best `cap` rows of one of its types can be kept: a type's earlier rows were all kept
    until the type filled (a row is rejected only when every one of its types is full). So each type's best `cap`
    rows are found by a bounded combine, every other row is rejected where it is, and the greedy pass runs over
    those candidates alone: at most `cap` times the number of instruction types, whatever the corpus."""

    def __init__(self, policy: SelectionPolicy):
        super().__init__()
        self.policy = policy

    def expand(self, rows):
        policy, cap = self.policy, self.policy.max_per_instruction_type
        candidates = beam.pvalue.AsDict(
            rows
            | "ByType" >> beam.FlatMap(lambda r: [(t, r) for t in types_of(r)])
            | "BestOfType" >> beam.combiners.Top.PerKey(cap, key=preference, reverse=True)
            | "CandidateIds" >> beam.FlatMap(lambda kv: [r["candidate_id"] for r in kv[1]])
            | "Distinct" >> beam.Distinct()
            | "AsKeys" >> beam.Map(lambda candidate_id: (candidate_id, True)))
        split = rows | "NotACandidate" >> beam.FlatMap(
            lambda r, ids: [r] if r["candidate_id"] in ids else [over_type_cap(r, cap)], ids=candidates
        ).with_outputs(REJECTED, main="candidates")
        overall = (
            split.candidates
            | "GatherCandidates" >> beam.combiners.ToList()  # at most cap x instruction types
            | "BalanceAndTop" >> beam.FlatMap(balance_and_top, policy=policy).with_outputs(REJECTED, main="kept")
        )
        return overall.kept, (split[REJECTED], overall[REJECTED]) | "CapRejections" >> beam.Flatten()


class Select(beam.PTransform):
    """Rows -> (kept, rejected); `policy` is any object with SelectionPolicy's fields (a CurateConfig)."""

    def __init__(self, policy: SelectionPolicy):
        super().__init__()
        self.policy = policy

    def expand(self, rows):
        policy = self.policy
        per_prompt = (
            rows
            | "KeyByPrompt" >> beam.Map(lambda r: (r["prompt_id"], r))
            | "GroupByPrompt" >> beam.GroupByKey()
            | "BestPerPrompt" >> beam.FlatMap(lambda kv: best_per_prompt(kv[0], kv[1], policy.max_per_prompt))
            .with_outputs(REJECTED, main="kept")
        )
        if not policy.max_per_instruction_type:
            if policy.top_fraction >= 1:  # nothing to rank across prompts
                return per_prompt.kept, per_prompt[REJECTED]
            top, below = per_prompt.kept | "TopFraction" >> TopFraction(policy.top_fraction)
            return top, (per_prompt[REJECTED], below) | "SelectionRejections" >> beam.Flatten()
        kept, capped = per_prompt.kept | "CapByType" >> CapByType(policy)
        return kept, (per_prompt[REJECTED], capped) | "SelectionRejections" >> beam.Flatten()


STEP = SetStep("selection", (OVER_PROMPT_CAP, OVER_TYPE_CAP, BELOW_TOP_FRACTION),
               lambda plan: Select(plan.config) if plan.config.control == "none" else None)
