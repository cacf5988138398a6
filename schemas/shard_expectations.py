"""The Great Expectations suite for curated shards."""

from __future__ import annotations

from schemas.records import SHARD_ROW


def shard_suite(min_score: float, require_finished: bool, eval_prompt_ids: list[str], eval_prompt_texts: list[str]):
    import great_expectations as gx

    E = gx.expectations
    suite = gx.ExpectationSuite(name="selfsift_shards")
    for expectation in (
        E.ExpectTableRowCountToBeBetween(min_value=1),
        E.ExpectTableColumnsToMatchOrderedList(column_list=SHARD_ROW.names + ["prompt_text"]),
        E.ExpectColumnValuesToNotBeNull(column="text"),
        E.ExpectColumnValuesToNotBeNull(column="candidate_id"),
        E.ExpectColumnValuesToBeUnique(column="candidate_id"),
        E.ExpectColumnValuesToBeUnique(column="text_sha256"),
        E.ExpectColumnValuesToBeBetween(column="score", min_value=min_score, max_value=1.0),
        E.ExpectColumnValuesToBeBetween(column="dedup_cluster_size", min_value=1),
        E.ExpectColumnValuesToNotBeInSet(column="prompt_id", value_set=eval_prompt_ids),
        E.ExpectColumnValuesToNotBeInSet(column="prompt_text", value_set=eval_prompt_texts),
        E.ExpectColumnValuesToBeInSet(column="finish_reason", value_set=["stop"] if require_finished else ["stop", "length"]),
    ):
        suite.add_expectation(expectation)
    return suite
