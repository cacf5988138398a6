"""Stage `validate`: schema check and the Great Expectations suite over an iteration's shards."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.config import Config
from pipelines.curate import shards_dir
from schemas.records import SHARD_ROW
from schemas.shard_expectations import shard_suite
from transforms.parquet_io import list_shards, read_table, write_atomically


class ValidationFailed(RuntimeError):
    pass


def report_path(iteration: str) -> Path:
    return Path(f"reports/validation/{iteration}.json")


def _schema_errors(directory: str) -> list[str]:
    errors = []
    for path in list_shards(directory):
        schema = pq.read_schema(path)
        if not schema.equals(SHARD_ROW, check_metadata=False):
            errors.append(f"{path}: schema differs from schemas.records.SHARD_ROW")
    return errors


def min_kept_score(config: Config) -> float:
    """The lowest combined score the judge policy can keep."""
    weights = {n: w for n, w in config.curate.weights.items() if w > 0}
    if config.curate.combine == "weighted":
        return config.curate.min_score
    return sum(w * config.judge.threshold(n) for n, w in weights.items()) / sum(weights.values())


def _run_suite(config: Config, iteration: str) -> list[dict]:
    import great_expectations as gx

    table = read_table(shards_dir(iteration), SHARD_ROW)
    frame = table.to_pandas()
    frame["prompt_text"] = [m[-1]["content"] if len(m) else None for m in frame["messages"]]
    context = gx.get_context(mode="ephemeral")  # the suite below needs an active context
    eval_rows = [r for name in ("eval", "eval_ood") for r in read_table(f"{config.prompts.out_dir}/{name}.parquet").to_pylist()]
    suite = shard_suite(
        min_kept_score(config), config.judge.heuristics.drop_truncated,
        sorted(r["prompt_id"] for r in eval_rows), sorted(r["messages"][-1]["content"] for r in eval_rows),
    )
    batch = (context.data_sources.add_pandas("shards").add_dataframe_asset(iteration)
             .add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame}))
    result = batch.validate(suite, result_format="SUMMARY")
    return [
        {
            "expectation": r.expectation_config.type,
            "column": r.expectation_config.kwargs.get("column"),
            "success": bool(r.success),
            "unexpected_count": r.result.get("unexpected_count"),
            "examples": [str(v)[:80] for v in (r.result.get("partial_unexpected_list") or [])[:3]],
            "observed": str(r.result.get("observed_value"))[:200] if "observed_value" in r.result else None,
        }
        for r in result.results
    ]


def summarize_failures(results: list[dict]) -> str:
    lines = []
    for r in results:
        if r["success"]:
            continue
        what = r["expectation"] + (f" on column {r['column']!r}" if r["column"] else "")
        detail = f"{r['unexpected_count']} rows, e.g. {r['examples']}" if r["unexpected_count"] else f"observed {r['observed']}"
        lines.append(f"  - {what}: {detail}")
    return "\n".join(lines)


def main(config: Config, iteration: str) -> dict:
    schema_errors = _schema_errors(shards_dir(iteration))
    results = [] if schema_errors else _run_suite(config, iteration)
    passed = not schema_errors and all(r["success"] for r in results)
    report = {"iteration": iteration, "success": passed, "schema_errors": schema_errors, "expectations": results}
    path = report_path(iteration)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(str(path), (json.dumps(report, indent=2) + "\n").encode())
    if not passed:
        details = "\n".join(f"  - {e}" for e in schema_errors) or summarize_failures(results)
        raise ValidationFailed(f"validation of {shards_dir(iteration)} failed ({path}):\n{details}")
    return report
