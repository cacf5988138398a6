"""Stage `revise` (Beam): failed answers get a second turn with the checker's feedback, and the revisions are judged.

Between judge and curate. It picks the iteration's usable candidates that failed the deciding judge policy
(transforms/revision/selection.py), asks the iteration's generator (generate's handler and sampling) to revise
each, told which instructions it broke in the checkers' own words, and judges the revisions with the judge
stage's own graph. Revisions are candidates of the ORIGINAL prompt (origin `revised`, `parent_candidate_id`),
written to data/revisions/ and data/revision_judgments/, which curate reads beside the sampled ones.

With `revise.enabled: false` (the default) the stage writes empty outputs at once, so DVC's outs exist and
curate's funnel is the sampled candidates' alone.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from pipelines.config import Config
from pipelines.run.guard import guarded
from pipelines.run.runtime import git_revision, params_hash, run_pipeline
from pipelines.stage import Out, Stage, iteration_of
from pipelines.stages.generate import generation_handler, lineage_of
from pipelines.stages.judge import graph as judge_graph
from pipelines.stages.judge import model_handlers
from schemas.records import CANDIDATE, JUDGMENT
from transforms.curation.curate import JoinJudged
from transforms.curation.plan import CurationPlan
from transforms.generation.candidates import Lineage
from transforms.io import faults
from transforms.io.parquet_io import (
    SHARD_GLOB,
    WriteSortedShards,
    clear_shards,
    read_table,
    shard_entries,
    shard_name,
    table_bytes,
    write_atomically,
    write_manifest,
)
from transforms.revision.request_order import InFixedOrder
from transforms.revision.requests import expand_failure, to_revised_candidate
from transforms.revision.selection import to_revise


def graph(config: Config, iteration: str, lineage: Lineage):
    """The Beam graph writing the revisions of the iteration's failed candidates, as a function that adds it to a
    pipeline."""
    layout, cfg, plan = config.layout, config.revise, CurationPlan(config.curate)
    handler = generation_handler(config, lineage.model, lineage.sampling)

    def build(p):
        prompts = p | "ReadPrompts" >> beam.io.ReadFromParquet(layout.prompts("train"))
        candidates = p | "ReadCandidates" >> beam.io.ReadFromParquet(f"{layout.candidates(iteration)}/{SHARD_GLOB}")
        judgments = p | "ReadJudgments" >> beam.io.ReadFromParquet(f"{layout.judgments(iteration)}/{SHARD_GLOB}")
        joined = (candidates, judgments, prompts) | "JoinJudged" >> JoinJudged(config.curate)  # curate counts orphans
        _ = (
            joined["rows"]
            | "ByPrompt" >> beam.Map(lambda row: (row["prompt_id"], row))
            | "GroupByPrompt" >> beam.GroupByKey()
            | "Select" >> beam.FlatMap(lambda kv: to_revise(list(kv[1]), cfg, plan))
            | "Expand" >> beam.FlatMap(expand_failure, k=cfg.candidates_per_failure, lineage=lineage)
            | "InCandidateOrder" >> InFixedOrder(key=lambda request: request[0]["candidate_id"])
            | "Generate" >> RunInference(KeyedModelHandler(handler))
            | "ToCandidate" >> beam.MapTuple(lambda meta, result: to_revised_candidate(meta, result.inference, lineage))
            | "Write" >> WriteSortedShards(layout.revisions(iteration), CANDIDATE, ("prompt_id", "candidate_id"),
                                           config.generate.num_shards)
        )

    return build


def write_empty(folder: str, schema, num_shards: int) -> None:
    for index in range(num_shards):
        write_atomically(FileSystems.join(folder, shard_name(index, num_shards)), table_bytes([], schema))


def main(config: Config, iteration: str, beam_args: list[str]) -> dict:
    with guarded("revise", iteration, config):
        return _revise(config, iteration, beam_args)


def _revise(config: Config, iteration: str, beam_args: list[str]) -> dict:
    layout, cfg = config.layout, config.revise
    revisions, judgments = layout.revisions(iteration), layout.revision_judgments(iteration)
    manifest = {"stage": "revise", "iteration": iteration, "enabled": cfg.enabled,
                "params_hash": params_hash(cfg, config.generate, config.judge, config.curate, config.seed),
                "git_revision": git_revision()}
    handlers = model_handlers(config) if cfg.enabled else {}  # before anything is cleared: a missing model is named
    lineage = lineage_of(config, iteration) if cfg.enabled else None
    for folder in (revisions, judgments):
        clear_shards(folder)
    if cfg.enabled:
        run_pipeline(graph(config, iteration, lineage), beam_args)
        manifest |= {"model": lineage.model, "model_sha256": lineage.model_sha256}
    else:
        write_empty(revisions, CANDIDATE, config.generate.num_shards)
    rows = read_table(revisions, None).num_rows
    if rows:
        run_pipeline(judge_graph(config, iteration, handlers=handlers, source=revisions, target=judgments), beam_args)
    else:  # nothing to judge
        write_empty(judgments, JUDGMENT, config.judge.num_shards)
    faults.reached("before_manifest")
    write_manifest(judgments, {**manifest, "rows": read_table(judgments, None).num_rows,
                               "shards": shard_entries(judgments)})
    manifest |= {"rows": rows, "parents": len(set(read_table(revisions, None).column("parent_candidate_id").to_pylist())),
                 "shards": shard_entries(revisions)}
    write_manifest(revisions, manifest)
    return manifest


def _run(args, config, beam):
    manifest = main(config, iteration_of(args, config), beam)
    return {k: manifest[k] for k in ("enabled", "rows", "parents")}


STAGE = Stage(
    "revise", "revise failed candidates with the checker's feedback, and judge the revisions (Beam)", _run,
    params=("seed", "revise", "generate", "judge", "curate"),  # curate: the judge policy decides what failed
    reads=lambda where: [where.layout.prompts("train"), where.layout.candidates(where.iteration),
                         where.layout.judgments(where.iteration), where.generator_model],
    writes=lambda where: [Out(where.layout.revisions(where.iteration)),
                          Out(where.layout.revision_judgments(where.iteration))],
    consumes=lambda where: where.layout.manifest(where.layout.judgments(where.iteration)),
    produces=lambda where: where.layout.manifest(where.layout.revisions(where.iteration)),
    each_iteration=True, beam=True)
