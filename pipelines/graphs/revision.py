"""Revision (`revise.enabled`, run by curate before it curates): failed answers get a second turn with the
checker's feedback, and the revisions are judged.

It picks the iteration's usable candidates that failed the deciding judge policy
(transforms/revision/selection.py), asks the iteration's generator (generate's handler and sampling) to revise
each, told which instructions it broke in the checkers' own words, and judges the revisions with the judge
stage's graph. Revisions are candidates of the ORIGINAL prompt (origin `revised`, `parent_candidate_id`),
written to data/revisions/ and data/revision_judgments/ (working files of curate, remade on each run, not DVC
outputs: every revision leaves curate in the kept or the rejected rows, with its judgments), which curate reads
beside the sampled ones. Off (the default), nothing runs and nothing is written.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from pipelines.config import Config
from pipelines.graphs.generation import generation_handler, lineage_of
from pipelines.graphs.judging import graph as judge_graph
from pipelines.graphs.judging import model_handlers
from pipelines.run.runtime import git_revision, params_hash, run_pipeline
from schemas.records import CANDIDATE, JUDGMENT
from transforms.curation.curate import JoinJudged
from transforms.curation.plan import CurationPlan
from transforms.generation.candidates import Lineage
from transforms.io import faults
from transforms.io.parquet_io import (
    SHARD_GLOB,
    WriteSortedShards,
    clear_shards,
    read_batches,
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


def revise(config: Config, iteration: str, beam_args: list[str]) -> dict:
    """Writes the iteration's revisions and their judgments; returns their manifest."""
    layout, cfg = config.layout, config.revise
    revisions, judgments = layout.revisions(iteration), layout.revision_judgments(iteration)
    handlers = model_handlers(config)  # before anything is cleared: a missing model is named
    lineage = lineage_of(config, iteration)
    for folder in (revisions, judgments):
        clear_shards(folder)
    run_pipeline(graph(config, iteration, lineage), beam_args)
    revision_shards = shard_entries(revisions)
    rows = sum(s["rows"] for s in revision_shards)
    if rows:
        run_pipeline(judge_graph(config, iteration, handlers=handlers, source=revisions, target=judgments), beam_args)
    else:  # nothing to judge
        for index in range(config.judge.num_shards):
            write_atomically(FileSystems.join(judgments, shard_name(index, config.judge.num_shards)),
                             table_bytes([], JUDGMENT))
    manifest: dict[str, object]  # its values: strings, then counts and shard entries
    manifest = {"stage": "curate", "part": "revision", "iteration": iteration,
                "params_hash": params_hash(cfg, config.generate, config.judge, config.curate, config.seed),
                "model": lineage.model, "model_sha256": lineage.model_sha256, "git_revision": git_revision()}
    faults.reached("before_manifest")
    judgment_shards = shard_entries(judgments)
    write_manifest(judgments, {**manifest, "rows": sum(s["rows"] for s in judgment_shards), "shards": judgment_shards})
    parents = {r["parent_candidate_id"] for r in read_batches(revisions, ["parent_candidate_id"])}
    manifest |= {"rows": rows, "parents": len(parents), "shards": revision_shards}
    write_manifest(revisions, manifest)
    return manifest
