"""Hindsight relabeling (`curate.relabel`): a usable answer that fails its prompt's constraints is
also offered under a new prompt, the same task asking only for constraints it demonstrably meets
(relabel_constraints.py).

Runs in curate between the join and the chain. Every row passes through; each answer that failed on
its merits (failed_answers.py: usable, every heuristic passed, below the judge policy's threshold)
adds a relabeled row. The new row keeps the answer and its generation facts (model, seed, token counts are
the parent's), and carries its own prompt (`prompt_id_for("train", text)`, the parent's earlier
messages kept), `origin: relabeled`, `parent_candidate_id`, and judgments made again for the new
prompt by the rule and heuristic judges the parent was judged by. Model and custom judges cannot run
here, so their judgments are not carried over, and relabeling is refused while one of them decides
(`check_deciding_judges`); refused under the ablation controls.

The task comes from the prompt's `metadata.task` (the builtin prompts record it; a prompt file of
your own may); a failed answer whose prompt has none, or that meets no constraint, is counted in the
notes, not relabeled. The relabel_share step caps the relabeled share of the kept corpus.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass

import apache_beam as beam

from schemas.reasons import RELABELED
from schemas.records import VERDICT_FIELDS
from transforms.curation.failed_answers import FAILED, PASSED, answer_verdict
from transforms.curation.notes import NOTES, RELABEL_NO_TASK, RELABEL_UNSATISFIED, RELABELED_ROWS
from transforms.curation.relabel_constraints import prompt_text_for, satisfied_constraints
from transforms.judges.registry import BY_NAME, REFERENCE
from transforms.judges.rules import enabled_checks
from transforms.prompts.prompt_builder import prompt_id_for
from transforms.settings import require

RERUNNABLE_KINDS = ("rule", "heuristic")  # judges curate can run again on a relabeled row


@dataclass(frozen=True)
class RelabelConfig:
    """Hindsight relabeling of failed answers (issue 15); off by default."""

    enabled: bool = False  # add a relabeled row for each usable answer that fails its prompt
    max_share: float = 0.25  # at most this share of the kept corpus is relabeled rows

    def validate(self, where: str) -> None:
        require(0 <= self.max_share <= 1, f"{where}.max_share must be in [0, 1]")


def check_deciding_judges(curate, where: str) -> None:
    """Relabeled rows are judged again in curate, where only rule judges run: refuse any other deciding judge."""
    if not curate.relabel.enabled:
        return
    for name in curate.gating():
        spec = BY_NAME.get(name)
        require(spec is not None and spec.kind in RERUNNABLE_KINDS,
                f"{where}: curate.weights.{name} > 0, but curate.relabel.enabled needs every deciding judge to be one "
                f"curate can run again on a relabeled prompt ({REFERENCE}); set curate.weights.{name} to 0 or "
                f"curate.relabel.enabled to false")


def enabled(plan) -> bool:
    return plan.config.relabel.enabled  # config refuses it under an ablation control


def relabeled_id(parent_id: str) -> str:
    return hashlib.sha256(f"relabeled\x1f{parent_id}".encode()).hexdigest()[:24]


def task_of(prompt: dict | None) -> str:
    """The prompt's task sentence from its metadata, or "" when it records none."""
    try:
        metadata = json.loads((prompt or {}).get("metadata") or "{}")
    except json.JSONDecodeError:
        return ""
    task = metadata.get("task") if isinstance(metadata, dict) else None
    return task.strip() if isinstance(task, str) else ""


def new_prompt(row: dict, task: str, constraints: list, rng: random.Random) -> dict:
    text = prompt_text_for(task, constraints, rng)
    return {
        "prompt_id": prompt_id_for("train", text),
        "messages": [*row["messages"][:-1], {"role": "user", "content": text}],
        "instruction_ids": [instruction_id for instruction_id, _ in constraints],
        "kwargs": [json.dumps(kwargs, sort_keys=True) for _, kwargs in constraints],
        "source": "selfsift/relabeled", "split": "train", "metadata": json.dumps({"task": task}),
    }


def relabeled_row(row: dict, prompt: dict, checks: dict, policy) -> dict:
    """The parent row under the new prompt, judged again by `checks` ({judge: rule check}) where the parent was."""
    judged_by = {j["judge"] for j in row["judgments"]}
    candidate = {**row, "candidate_id": relabeled_id(row["candidate_id"]), "prompt_id": prompt["prompt_id"],
                 "origin": RELABELED, "parent_candidate_id": row["candidate_id"]}
    records = [check(candidate, prompt).record(candidate["candidate_id"], name)
               for name, check in checks.items() if name in judged_by]
    judgments = [{k: j[k] for k in VERDICT_FIELDS} for j in records]
    by_judge = {j["judge"]: j for j in judgments}
    complete = all(n in by_judge for n in policy.gating())
    return {**candidate, "messages": prompt["messages"], "instruction_ids": prompt["instruction_ids"],
            "kwargs": prompt["kwargs"], "judgments": judgments,
            "score": policy.combined_score(by_judge) if complete else 0.0}


class AddRelabeled(beam.DoFn):
    """Passes every row on and adds one relabeled row per answer that failed on its merits (failed_answers.py;
    never a relabeled one); notes what it added and what it could not."""

    def __init__(self, plan):
        self.plan, self.policy, self.judges = plan, plan.config, plan.judges
        self.seed, self.max_constraints = plan.seed, plan.max_constraints

    def setup(self):
        self.verdict = answer_verdict(self.plan)
        self.checks = {name: check for name, check in enabled_checks(self.judges).items()
                       if self.judges.spec(name).kind in RERUNNABLE_KINDS}

    def process(self, row, prompts, passing):
        yield row
        if row["origin"] == RELABELED or self.verdict(row) != FAILED:
            return
        parent_id = row["candidate_id"]
        task = task_of(prompts.get(row["prompt_id"]))
        if not task:
            yield beam.pvalue.TaggedOutput(NOTES, (RELABEL_NO_TASK, parent_id))
            return
        rng = random.Random(f"{self.seed}:relabel:{parent_id}")
        constraints = satisfied_constraints(row["text"], rng, self.max_constraints, passing)
        if not constraints:
            yield beam.pvalue.TaggedOutput(NOTES, (RELABEL_UNSATISFIED, parent_id))
            return
        added = relabeled_row(row, new_prompt(row, task, constraints, rng), self.checks, self.policy)
        yield beam.pvalue.TaggedOutput(NOTES, (RELABELED_ROWS, added["candidate_id"]))
        yield added


class Relabel(beam.PTransform):
    """(rows, prompts) -> {"rows": the rows and the relabeled ones, NOTES: (kind, id) notes}."""

    def __init__(self, plan):
        super().__init__()
        self.plan = plan

    def expand(self, inputs):
        rows, prompts = inputs
        passing = (
            rows
            | "PassingRows" >> beam.Filter(lambda row, verdict: verdict(row) == PASSED, verdict=answer_verdict(self.plan))
            | "TheirTypes" >> beam.FlatMap(lambda r: r["instruction_ids"])
            | "CountTypes" >> beam.combiners.Count.PerElement()
            | "TypeCounts" >> beam.combiners.ToDict()
        )
        out = rows | "AddRelabeled" >> beam.ParDo(
            AddRelabeled(self.plan),
            prompts=beam.pvalue.AsDict(prompts | "KeyPrompts" >> beam.Map(lambda p: (p["prompt_id"], p))),
            passing=beam.pvalue.AsSingleton(passing)).with_outputs(NOTES, main="rows")
        return {"rows": out.rows, NOTES: out[NOTES]}
