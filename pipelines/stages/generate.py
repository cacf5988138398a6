"""Stage `generate` (Beam): sampled candidates per train prompt from the previous iteration's model.

`generate.budget` uniform: K candidates per prompt, in one round. adaptive: round 1 samples
`generate.adaptive.first_round` per prompt; each later round scores the candidates so far with the IFEval
verifier and spends its share of the rest of the K x prompts budget on the prompts none passed yet, the
hardest first (transforms/generation/adaptive_budget.py). Every round writes into the one candidates
folder, its shards tagged with the round (Layout.round_tag), so every reader of the folder sees them all.

A round's candidates of a prompt all go to the shard its prompt_id hashes to. With `generate.resumable`,
each shard is recorded when complete, so a rerun after a crash regenerates only the shards that were not
finished; on a local runner each shard of each round is its own Beam run (see pipelines/run/resume.py).
A later round's record holds for its allocation, which the earlier rounds' candidates decide.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from pipelines.config import Config
from pipelines.graphs.generation import generation_handler, lineage_of
from pipelines.run.beam_options import runs_locally
from pipelines.run.guard import guarded
from pipelines.run.resume import ShardProgress, run_shards
from pipelines.run.runtime import code_fingerprint, git_revision, params_hash, run_pipeline
from pipelines.stage import Out, Stage, iteration_of
from schemas.records import CANDIDATE
from transforms.generation import (
    adaptive_budget,
    candidates,
    decoding,
    fallback_generation,
    hf_generation,
    vllm_generation,
)
from transforms.generation.adaptive_budget import allocate, round_budget, score_rounds
from transforms.generation.candidates import Lineage, expand_prompt, to_candidate
from transforms.io import devices, faults, parquet_io
from transforms.io.layout import Layout
from transforms.io.parquet_io import (
    WriteSortedShards,
    file_sha256,
    keep_only_tags,
    read_rows,
    shard_entries,
    shard_index,
    write_manifest,
)
from transforms.io.progress import ShowProgress
from transforms.judges import ifeval_verifier

log = logging.getLogger("selfsift")

Plan = dict[str, tuple[int, int]]  # {prompt_id: (its first sample index, its candidates)} of one round


def round_name(iteration: str, generation_round: int) -> str:
    """A round's name in the log, its progress line and its resume record."""
    tag = Layout.round_tag(generation_round)
    return f"generate@{iteration}" + (f".{tag}" if tag else "")


def graph(config: Config, iteration: str, lineage: Lineage, shards: list[int], total: int = 0,
          plan: Plan | None = None, generation_round: int = 1):
    """The Beam graph generating the given shards of one round, as a function that adds it to a pipeline.
    `total`: the candidates the whole stage run makes, for its progress line; `plan`: the round's
    candidates per prompt (default: K each, from sample index 0)."""
    cfg, n, target = config.generate, config.generate.num_shards, config.layout.candidates(iteration)
    handler = generation_handler(config, lineage.model, lineage.sampling)
    k = cfg.candidates_per_prompt

    def expand(prompt: dict):
        start, count = (0, k) if plan is None else plan.get(prompt["prompt_id"], (0, 0))
        return expand_prompt(prompt, count, lineage, start, generation_round)

    def build(p):
        _ = (
            p
            | "ReadPrompts" >> beam.io.ReadFromParquet(config.layout.prompts("train"))
            | "OnlyTheseShards" >> beam.Filter(lambda r: shard_index(r["prompt_id"], n) in shards)
            | "Expand" >> beam.FlatMap(expand)
            | "Generate" >> RunInference(KeyedModelHandler(handler))
            | "Progress" >> beam.ParDo(ShowProgress(round_name(iteration, generation_round), total, "candidates"))
            | "ToCandidate" >> beam.MapTuple(lambda meta, result: to_candidate(meta, result.inference, lineage))
            | "Write" >> WriteSortedShards(target, CANDIDATE, ("prompt_id", "candidate_id"), n, only=shards,
                                           tag=Layout.round_tag(generation_round))
        )

    return build


def run_round(config: Config, iteration: str, lineage: Lineage, fingerprint: str, plan: Plan,
              generation_round: int, beam_args: list[str], used: Counter) -> ShardProgress:
    """Makes one round's shards, reusing those an interrupted run completed for the same plan; adds the rows each
    device made to `used`."""
    n = config.generate.num_shards
    progress = ShardProgress(round_name(iteration, generation_round), config.layout.candidates(iteration),
                             params_hash(fingerprint, generation_round, sorted(plan.items())),
                             Layout.round_tag(generation_round))
    run_shards(progress, n, config.generate.resumable, beam_args,
               lambda shards, total: used.update(devices.used(run_pipeline(
                   graph(config, iteration, lineage, shards, total, plan, generation_round), beam_args))),
               "candidates", "generation",
               lambda shards: sum(count for pid, (_, count) in plan.items() if shard_index(pid, n) in shards))
    return progress


def round_summary(generation_round: int, budget: int, plan: Plan) -> dict:
    """A round in the manifest: the candidates it could spend, the prompts it sampled and the candidates it made."""
    return {"round": generation_round, "budget": budget, "prompts": sum(c > 0 for _, c in plan.values()),
            "candidates": sum(c for _, c in plan.values())}


def uniform_rounds(config: Config, iteration: str, lineage: Lineage, fingerprint: str, prompts: list[dict],
                   beam_args: list[str], used: Counter) -> tuple[list[dict], list[ShardProgress]]:
    k = config.generate.candidates_per_prompt
    plan = {p["prompt_id"]: (0, k) for p in prompts}
    return ([round_summary(1, k * len(prompts), plan)],
            [run_round(config, iteration, lineage, fingerprint, plan, 1, beam_args, used)])


def adaptive_rounds(config: Config, iteration: str, lineage: Lineage, fingerprint: str, prompts: list[dict],
                    beam_args: list[str], used: Counter) -> tuple[list[dict], list[ShardProgress]]:
    cfg, adaptive, name = config.generate, config.generate.adaptive, f"generate@{iteration}"
    total, last = cfg.candidates_per_prompt * len(prompts), adaptive.rounds + 1
    verifier, verdicts = ifeval_verifier.verifier(config.judge.verifier), {}

    def check(candidate: dict, prompt: dict):  # each candidate is verified once, whichever round reads it
        if candidate["candidate_id"] not in verdicts:
            verdicts[candidate["candidate_id"]] = verifier(candidate, prompt)
        return verdicts[candidate["candidate_id"]]

    if not any(p["instruction_ids"] for p in prompts):
        log.info("%s: no train prompt has constraints the verifier can check, so the adaptive budget is spread "
                 "uniformly over the prompts", name)
    plan = {p["prompt_id"]: (0, adaptive.first_round) for p in prompts}
    rounds, progresses, budget = [], [], total
    for generation_round in range(1, last + 1):
        if generation_round > 1:
            made = [c for c in read_rows(config.layout.candidates(iteration), CANDIDATE)
                    if c["generation_round"] < generation_round]
            states, pass_rates = score_rounds(prompts, made, check)
            budget = round_budget(total, len(made), last - generation_round + 1)
            given = allocate(states, pass_rates, budget, adaptive.max_candidates_per_prompt, config.seed,
                             generation_round)
            plan = {pid: (states[pid].sampled, count) for pid, count in given.items()}
            hardest = sorted(pass_rates.items(), key=lambda item: (item[1], item[0]))[:3]
            log.info("%s: round %d of %d: %d candidates for %d of the %d prompts without a passing candidate "
                     "(budget %d); hardest types so far: %s", name, generation_round, last, sum(given.values()),
                     len(given), sum(not s.solved for s in states.values()), budget,
                     ", ".join(f"{t} {rate:.0%}" for t, rate in hardest) or "none")
        rounds.append(round_summary(generation_round, budget, plan))
        progresses.append(run_round(config, iteration, lineage, fingerprint, plan, generation_round, beam_args, used))
    return rounds, progresses


def planned_device(config: Config, beam_args: list[str]) -> str:
    """The device generation runs on, as far as this machine can tell before it starts: here on a local runner;
    on a distributed one, the setting and the workers' accelerator, since `auto` is resolved on each worker."""
    cfg = config.generate
    if cfg.backend != "transformers":
        return cfg.backend
    if runs_locally(beam_args):
        return devices.resolve(cfg.device, "generate")
    return f"{cfg.device} on workers with {config.beam.generate.accelerator or 'no accelerator'}"


def main(config: Config, iteration: str, beam_args: list[str]) -> dict:
    cfg = config.generate
    prompts_file = config.layout.prompts("train")
    target, n = config.layout.candidates(iteration), cfg.num_shards
    # before a resumed run clears anything; the same seed samples other text on a GPU, so shards made on
    # another kind of device are not reused
    device = planned_device(config, beam_args)
    with guarded("generate", iteration, config):
        lineage = lineage_of(config, iteration)
        fingerprint = params_hash(cfg, config.seed, lineage.model_sha256, file_sha256(prompts_file), n, device,
                                  code_fingerprint(sys.modules[__name__], candidates, decoding, fallback_generation,
                                                   hf_generation, parquet_io, vllm_generation, adaptive_budget,
                                                   ifeval_verifier))
        prompts = read_rows(prompts_file)
        adaptive = cfg.samples_adaptively()
        # shards of rounds this run does not make (an earlier run's, with other settings) would be read as its own
        keep_only_tags(target, {Layout.round_tag(r) for r in range(1, cfg.adaptive.rounds + 2 if adaptive else 2)})
        used: Counter = Counter()
        rounds, progresses = (adaptive_rounds if adaptive else uniform_rounds)(
            config, iteration, lineage, fingerprint, prompts, beam_args, used)
        faults.reached("before_manifest")
        shard_list = shard_entries(target)
        manifest = {
            "stage": "generate", "iteration": lineage.iteration, "rows": sum(s["rows"] for s in shard_list),
            "shards": shard_list, "model": lineage.model, "model_sha256": lineage.model_sha256,
            "device": ", ".join(sorted(used)) or device,  # where the workers made this run's rows
            "budget": cfg.budget, "rounds": rounds,
            "params_hash": params_hash(cfg, config.seed), "git_revision": git_revision(),
        }
        write_manifest(target, manifest)
        for progress in progresses:
            progress.clear()
    return manifest


STAGE = Stage(
    "generate", "sample candidates (Beam)", lambda args, config, beam: main(config, iteration_of(args, config), beam),
    params=("seed", "generate", "judge.verifier.threshold"),  # the threshold: what passes, for budget adaptive
    reads=lambda where: [where.layout.prompts("train"), where.generator_model],
    # persist: a rerun after a crash keeps the completed shards whose checksum and fingerprint verify
    writes=lambda where: [Out(where.layout.candidates(where.iteration), persist=True)],
    consumes=lambda where: where.layout.model_summary(where.generator_model),
    produces=lambda where: where.layout.manifest(where.layout.candidates(where.iteration)),
    each_iteration=True, beam=True)
