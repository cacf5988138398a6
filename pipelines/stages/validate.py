"""Stage `validate` (Beam for its whole-table checks): the Great Expectations suites (schemas/expectations.py)
over an iteration's prompts, candidates, judgments, shards and pairs, before anything is trained on them.

No step holds a table: row counts come from the Parquet footers and uniqueness from a Beam pipeline
(pipelines/graphs/whole_table_checks.py); every other expectation runs one batch of at most BATCH_ROWS rows at a
time, and holds when it holds in every batch. The Data Docs show each batch's run.

Writes a summary to `reports/validation/iter-N.json` and Great Expectations' HTML Data Docs to
`reports/validation/iter-N/`. An expectation with severity `fail` that does not hold stops the
loop, naming the expectation, the column and example rows; one with `warn` is reported only.
"""

from __future__ import annotations

import io
import json
import logging
import shutil

import pyarrow.parquet as pq

from pipelines.config import Config, calibration_samples, iteration_number
from pipelines.graphs.whole_table_checks import (
    ROW_COUNT,
    UNIQUE,
    UniqueCheck,
    row_count,
    row_count_holds,
    unique_columns,
    unique_graph,
    unique_results,
    whole_table,
)
from pipelines.run.guard import guarded
from pipelines.run.runtime import run_pipeline
from pipelines.stage import Out, Stage, iteration_of
from schemas.expectations import SuiteInputs, configured, suite
from schemas.records import CANDIDATE, JUDGMENT, PAIR, PROMPT, SHARD_ROW
from transforms.io.layout import EVAL_SPLITS, Layout
from transforms.io.parquet_io import list_shards, read_bytes, read_json, read_table, record_batches, write_atomically

log = logging.getLogger("selfsift")
BATCH_ROWS = 20_000  # rows Great Expectations holds at once


class ValidationFailed(RuntimeError):
    pass


def min_kept_score(config: Config) -> float:
    """The lowest combined score the judge policy can keep (any, for an ablation control's random sample)."""
    cfg = config.curate
    if cfg.control != "none":
        return 0.0
    if cfg.combine == "weighted":
        return cfg.min_score
    weights = {n: cfg.weights[n] for n in cfg.gating()}
    # a judge without a threshold decides `passed` itself, so any of its scores can be kept
    return sum(w * (config.judge.threshold(n) or 0.0) for n, w in weights.items()) / sum(weights.values())


def _sources(config: Config, iteration: str) -> dict:
    """{record type: (folder or file, schema)} of what this iteration validates."""
    layout = config.layout
    return {
        "prompts": (layout.prompts("train"), PROMPT),
        "candidates": (layout.candidates(iteration), CANDIDATE),
        "judgments": (layout.judgments(iteration), JUDGMENT),
        "shards": (layout.shards(iteration), SHARD_ROW),
        "pairs": (layout.pairs(iteration), PAIR),
    }


def _schema_errors(sources: dict) -> list[str]:
    errors = []
    for name, (location, schema) in sources.items():
        paths = [location] if location.endswith(".parquet") else list_shards(location)
        for path in paths:
            if not pq.read_schema(io.BytesIO(read_bytes(path))).equals(schema, check_metadata=False):
                errors.append(f"{path}: schema differs from schemas.records.{name}")
    return errors


def allocated_candidates(config: Config, iteration: str, train_prompts: int) -> int:
    """The candidates generate was to make: K per train prompt, or with budget adaptive what its manifest says
    the rounds allocated, so that a lost candidate is caught either way."""
    if not config.generate.samples_adaptively():
        return train_prompts * config.generate.candidates_per_prompt
    path = config.layout.manifest(config.layout.candidates(iteration))
    manifest = read_json(path)
    if manifest is None or "rounds" not in manifest:
        raise FileNotFoundError(f"{path}: no generate manifest with its rounds, so the candidates generate.budget "
                               f"adaptive allocated are unknown; run `selfsift generate --iteration {iteration}`")
    return sum(r["candidates"] for r in manifest["rounds"])


def suite_inputs(config: Config, iteration: str) -> SuiteInputs:
    layout = config.layout
    train_prompts = read_table(layout.prompts("train")).num_rows
    evals = [r for split in EVAL_SPLITS for r in read_table(layout.prompts(split)).to_pylist()]
    # your own sets by text only: their ids are yours and may repeat the train file's
    own = [r for name in config.evaluate.sets for r in read_table(layout.prompts(name)).to_pylist()]
    judged = read_json(layout.manifest(layout.judgments(iteration)))
    assert judged is not None, f"{iteration} is judged (validate runs after judge)"
    judges = judged["judges"]
    return SuiteInputs(
        iteration=iteration_number(iteration),
        train_prompts=train_prompts,
        candidates=allocated_candidates(config, iteration, train_prompts),
        max_new_tokens=config.generate.max_new_tokens,
        judges=tuple(judges),
        calibration_samples=tuple((name, size) for name, size in calibration_samples(config).items()
                                  if name in judges),
        min_score=min_kept_score(config),
        require_finished=config.judge.heuristics.drop_truncated and config.curate.control != "no_filter",
        pair_min_margin=config.curate.pairs.min_margin,
        eval_prompt_ids=tuple(sorted(r["prompt_id"] for r in evals)),
        eval_prompt_texts=tuple(sorted(r["messages"][-1]["content"] for r in evals + own)),
    )


def _frame(table):
    frame = table.to_pandas()
    if "messages" in frame:
        frame["prompt_text"] = [m[-1]["content"] if len(m) else None for m in frame["messages"]]
    return frame


def _batches(location: str, schema):
    """The table as frames of at most BATCH_ROWS rows, shard by shard; an empty table is one empty frame."""
    import pyarrow as pa

    empty = True
    for batch in record_batches(location, rows=BATCH_ROWS):
        empty = False
        yield _frame(pa.Table.from_batches([batch]))
    if empty:
        yield _frame(schema.empty_table())


def _run_suites(config: Config, iteration: str, sources: dict, beam_args: list[str]) -> dict[str, list[dict]]:
    """Every expectation's summary, by record type in suite order: the whole-table ones from footers and Beam
    (whole_table_checks.py), the rest in Great Expectations one batch at a time, their batches' results merged."""
    found = configured(suite_inputs(config, iteration), config.validate.severity)
    whole = _whole_table_results(found, sources, beam_args)
    per_batch = _batch_results(iteration, {name: {i: e for i, e in suite.items() if not whole_table(e)}
                                           for name, suite in found.items()}, sources)
    return {name: [whole[i] if i in whole else per_batch[i] for i in suite] for name, suite in found.items()}


def _batch_results(iteration: str, found: dict, sources: dict) -> dict[str, dict]:
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    docs = Layout.validation_docs(iteration)
    shutil.rmtree(docs, ignore_errors=True)  # pages of an earlier run would stay in the index
    context = gx.get_context(mode="ephemeral")
    context.add_data_docs_site(site_name="selfsift", site_config={
        "class_name": "SiteBuilder", "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(docs.resolve())}})
    source = context.data_sources.add_pandas("selfsift")
    results: dict[str, dict] = {}
    for name, expectations_of_type in found.items():
        batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(iteration)
        definition = context.validation_definitions.add(gx.ValidationDefinition(
            data=batch, suite=context.suites.add(suite(name, expectations_of_type)), name=f"{iteration}-{name}"))
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"{iteration}-{name}", validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="data_docs", site_names=["selfsift"])],
            result_format={"result_format": "SUMMARY"}))
        for frame in _batches(*sources[name]):
            run = checkpoint.run(batch_parameters={"dataframe": frame})
            for r in (r for v in run.run_results.values() for r in v.results):
                summary = _summary(r)
                results[summary["id"]] = _merged(results.get(summary["id"]), summary)
    return results


def _merged(earlier: dict | None, batch: dict) -> dict:
    """One expectation over every batch so far: it holds if it held in each; unexpected rows add up."""
    if earlier is None:
        return batch
    counts = [c for c in (earlier["unexpected_count"], batch["unexpected_count"]) if c is not None]
    return {**earlier, "success": earlier["success"] and batch["success"],
            "unexpected_count": sum(counts) if counts else None,
            "examples": (earlier["examples"] + batch["examples"])[:3],
            "observed": earlier["observed"] if not earlier["success"] or batch["success"] else batch["observed"]}


def _whole_table_results(found: dict, sources: dict, beam_args: list[str]) -> dict[str, dict]:
    counted = {i: (e, row_count(sources[name][0])) for name, suite in found.items() for i, e in suite.items()
               if type(e).__name__ in ROW_COUNT}
    checks = [UniqueCheck(i, sources[name][0], tuple(unique_columns(e))) for name, suite in found.items()
              for i, e in suite.items() if type(e).__name__ in UNIQUE]
    unique = unique_results(run_pipeline(unique_graph(checks), beam_args), checks) if checks else {}
    expectation_of = {i: e for suite in found.values() for i, e in suite.items()}
    results = {i: _whole_summary(e, row_count_holds(e, rows), None, [], str(rows)) for i, (e, rows) in counted.items()}
    results |= {i: _whole_summary(expectation_of[i], rows == 0, rows, examples, None)
                for i, (rows, examples) in unique.items()}
    return results


def _whole_summary(expectation, success: bool, unexpected: int | None, examples: list[str], observed) -> dict:
    columns = getattr(expectation, "column_list", None) or getattr(expectation, "column", None)
    return {"id": expectation.meta["id"], "expectation": expectation.expectation_type,
            "severity": _severity(expectation.severity), "column": columns,
            "success": success, "unexpected_count": unexpected, "examples": [e[:80] for e in examples],
            "observed": observed}


def _severity(level) -> str:
    """params.yaml's word for a Great Expectations severity (an enum, or its value as set in schemas/expectations)."""
    return "warn" if getattr(level, "value", level) == "warning" else "fail"


def _summary(r) -> dict:
    config = r.expectation_config
    return {
        "id": config.meta["id"], "expectation": config.type, "severity": _severity(config.severity),
        "column": config.kwargs.get("column") or config.kwargs.get("column_list") or config.kwargs.get("column_A"),
        "success": bool(r.success), "unexpected_count": r.result.get("unexpected_count"),
        "examples": [str(v)[:80] for v in (r.result.get("partial_unexpected_list") or [])[:3]],
        "observed": str(r.result.get("observed_value"))[:200] if "observed_value" in r.result else None,
    }


def describe(r: dict) -> str:
    what = f"{r['id']} ({r['expectation']}" + (f" on column {r['column']!r}" if r["column"] else "") + ")"
    detail = (f"{r['unexpected_count']} rows, e.g. {r['examples']}" if r["unexpected_count"]
              else f"observed {r['observed']}")
    return f"  - {what}: {detail}"


def main(config: Config, iteration: str, beam_args: list[str] | None = None) -> dict:
    with guarded("validate", iteration, config):
        return _validate(config, iteration, beam_args or [])


def _validate(config: Config, iteration: str, beam_args: list[str]) -> dict:
    sources = _sources(config, iteration)
    schema_errors = _schema_errors(sources)
    results = {} if schema_errors else _run_suites(config, iteration, sources, beam_args)
    flat = [r for rs in results.values() for r in rs]
    failed = [r for r in flat if not r["success"] and r["severity"] == "fail"]
    warnings = [r for r in flat if not r["success"] and r["severity"] == "warn"]
    passed = not schema_errors and not failed
    report = {
        "iteration": iteration, "success": passed, "schema_errors": schema_errors,
        "summary": {name: {"expectations": len(rs), "failed": sum(not r["success"] for r in rs)}
                    for name, rs in results.items()},
        "failed": [r["id"] for r in failed], "warnings": [r["id"] for r in warnings],
        "data_docs": str(Layout.validation_docs(iteration) / "index.html"), "suites": results,
    }
    path = Layout.validation(iteration)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(str(path), (json.dumps(report, indent=2) + "\n").encode())
    for r in warnings:
        log.warning("validation warning for %s:\n%s", iteration, describe(r))
    if not passed:
        details = "\n".join(f"  - {e}" for e in schema_errors) or "\n".join(describe(r) for r in failed)
        raise ValidationFailed(f"validation of {iteration} failed ({path}; Data Docs: {report['data_docs']}):\n{details}")
    return report


STAGE = Stage(
    "validate", "run the expectation suites over the iteration's records",
    lambda args, config, beam: {"success": main(config, iteration_of(args, config), beam)["success"]},
    params=("validate", "generate.candidates_per_prompt", "generate.budget", "generate.max_new_tokens",
            "curate.pairs.min_margin", "curate.combine", "curate.weights", "curate.min_score", "curate.control",
            "judge.verifier.threshold", "judge.llm_judge.threshold", "judge.reward_model.threshold",
            "judge.heuristics.drop_truncated", "evaluate.sets"),  # no kept prompt is an eval prompt of any set
    reads=lambda where: [where.layout.prompts_folder(), where.layout.candidates(where.iteration),
                         where.layout.judgments(where.iteration), where.layout.shards(where.iteration),
                         where.layout.pairs(where.iteration)],
    writes=lambda where: [Out(str(Layout.validation(where.iteration)), cache=False),
                          Out(str(Layout.validation_docs(where.iteration)))],  # Great Expectations' Data Docs
    consumes=lambda where: where.layout.manifest(where.layout.shards(where.iteration)),
    produces=lambda where: str(Layout.validation(where.iteration)),
    each_iteration=True, beam=True)
