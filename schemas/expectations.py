"""Great Expectations suites, one per record type: prompts, candidates, judgments, shards, pairs.

Every expectation carries a stable id (`meta.id`), given once, where it is defined; params.yaml
`validate.severity` marks any of them `fail` (stops the loop before fine-tuning) or `warn` (reported only).
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.reasons import FINISH_REASONS, LENGTH, STOP
from schemas.records import SHARD_ROW

SEVERITIES = {"fail": "critical", "warn": "warning"}  # params.yaml word -> Great Expectations' FailureSeverity
# Every expectation fails the loop unless said otherwise here or in params.yaml `validate.severity`.
# Pairs are not trained on by default (SFT), so an eval prompt among them is reported, not fatal.
DEFAULT_SEVERITY = {"pairs.not_eval_prompt_id": "warn"}


@dataclass(frozen=True)
class SuiteInputs:
    """What the suites check the data against, from params and the earlier stages' manifests."""

    iteration: int
    train_prompts: int
    candidates: int  # what generate allocated: K per train prompt, or the adaptive rounds' sum (its manifest)
    max_new_tokens: int
    judges: tuple[str, ...]
    calibration_samples: tuple[tuple[str, int], ...]  # (judge, sample size) of the judges scoring a sample only
    min_score: float
    require_finished: bool
    pair_min_margin: float
    eval_prompt_ids: tuple[str, ...]
    eval_prompt_texts: tuple[str, ...]


def expectations(inputs: SuiteInputs) -> dict[str, dict]:
    """{record type: {expectation id: the expectation}}: every expectation, each named once."""
    import great_expectations as gx

    E = gx.expectations
    i = inputs
    n_candidates = i.candidates
    n_judgments = n_candidates * (len(i.judges) - len(i.calibration_samples)) + sum(
        min(size, n_candidates) for _, size in i.calibration_samples)
    return {
        "prompts": {
            "prompts.row_count": E.ExpectTableRowCountToEqual(value=i.train_prompts),
            "prompts.prompt_id_not_null": E.ExpectColumnValuesToNotBeNull(column="prompt_id"),
            "prompts.prompt_id_unique": E.ExpectColumnValuesToBeUnique(column="prompt_id"),
            "prompts.split_is_train": E.ExpectColumnValuesToBeInSet(column="split", value_set=["train"]),
            "prompts.not_eval_prompt": E.ExpectColumnValuesToNotBeInSet(column="prompt_text",
                                                                        value_set=list(i.eval_prompt_texts)),
        },
        "candidates": {
            "candidates.row_count": E.ExpectTableRowCountToEqual(value=n_candidates),
            "candidates.candidate_id_unique": E.ExpectColumnValuesToBeUnique(column="candidate_id"),
            "candidates.text_not_null": E.ExpectColumnValuesToNotBeNull(column="text"),
            "candidates.finish_reason_known": E.ExpectColumnValuesToBeInSet(
                column="finish_reason", value_set=list(FINISH_REASONS)),
            "candidates.completion_tokens_within_limit": E.ExpectColumnValuesToBeBetween(
                column="completion_tokens", min_value=0, max_value=i.max_new_tokens),
            "candidates.iteration_matches": E.ExpectColumnValuesToBeInSet(column="iteration", value_set=[i.iteration]),
        },
        "judgments": {
            "judgments.row_count": E.ExpectTableRowCountToEqual(value=n_judgments),
            "judgments.one_per_candidate_and_judge": E.ExpectCompoundColumnsToBeUnique(
                column_list=["candidate_id", "judge"]),
            "judgments.judge_known": E.ExpectColumnValuesToBeInSet(column="judge", value_set=list(i.judges)),
            "judgments.score_in_unit_interval": E.ExpectColumnValuesToBeBetween(column="score", min_value=0.0,
                                                                                max_value=1.0),
        },
        "shards": {
            "shards.row_count": E.ExpectTableRowCountToBeBetween(min_value=1),
            "shards.columns": E.ExpectTableColumnsToMatchOrderedList(column_list=SHARD_ROW.names + ["prompt_text"]),
            "shards.text_not_null": E.ExpectColumnValuesToNotBeNull(column="text"),
            "shards.candidate_id_unique": E.ExpectColumnValuesToBeUnique(column="candidate_id"),
            "shards.text_unique": E.ExpectColumnValuesToBeUnique(column="text_sha256"),
            "shards.min_score": E.ExpectColumnValuesToBeBetween(column="score", min_value=i.min_score, max_value=1.0),
            "shards.dedup_cluster_size": E.ExpectColumnValuesToBeBetween(column="dedup_cluster_size", min_value=1),
            "shards.not_eval_prompt_id": E.ExpectColumnValuesToNotBeInSet(column="prompt_id",
                                                                          value_set=list(i.eval_prompt_ids)),
            "shards.not_eval_prompt_text": E.ExpectColumnValuesToNotBeInSet(column="prompt_text",
                                                                            value_set=list(i.eval_prompt_texts)),
            "shards.finished": E.ExpectColumnValuesToBeInSet(
                column="finish_reason", value_set=[STOP] if i.require_finished else [STOP, LENGTH]),
        },
        "pairs": {
            "pairs.pair_id_unique": E.ExpectColumnValuesToBeUnique(column="pair_id"),
            "pairs.margin_at_least_min": E.ExpectColumnValuesToBeBetween(column="margin", min_value=i.pair_min_margin,
                                                                         max_value=1.0),
            "pairs.chosen_scores_higher": E.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="chosen_score", column_B="rejected_score"),
            "pairs.not_eval_prompt_id": E.ExpectColumnValuesToNotBeInSet(column="prompt_id",
                                                                         value_set=list(i.eval_prompt_ids)),
        },
    }


def expectation_ids() -> tuple[str, ...]:
    """Every expectation's id, in suite order: what `validate.severity` may name."""
    inputs = SuiteInputs(0, 0, 0, 0, (), (), 0.0, True, 0.0, (), ())
    return tuple(expectation_id for suite in expectations(inputs).values() for expectation_id in suite)


def configured(inputs: SuiteInputs, severity: dict[str, str]) -> dict[str, dict]:
    """expectations(), each with its id in `meta` and its severity: `severity` overrides DEFAULT_SEVERITY ('fail' or
    'warn'; default fail)."""
    levels = {**DEFAULT_SEVERITY, **severity}
    found = expectations(inputs)
    for suite in found.values():
        for expectation_id, expectation in suite.items():
            expectation.meta = {"id": expectation_id}
            expectation.severity = SEVERITIES[levels.get(expectation_id, "fail")]
    return found


def suite(name: str, found: dict):
    """A Great Expectations suite of configured expectations."""
    import great_expectations as gx

    out = gx.ExpectationSuite(name=f"selfsift_{name}")
    for expectation in found.values():
        out.add_expectation(expectation)
    return out
