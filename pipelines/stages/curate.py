"""Stage `curate` (Beam): kept shards, rejected rows and preference pairs, with a manifest whose
funnel accounts for every candidate, and whose notes count what was met but rejected no candidate."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipelines.config import Config
from pipelines.graphs import revision
from pipelines.run.guard import guarded
from pipelines.run.runtime import git_revision, params_hash, run_pipeline
from pipelines.stage import Out, Stage, iteration_of
from schemas.reasons import ORIGINS
from schemas.records import PAIR, REJECTED_ROW, SHARD_ROW
from transforms.curation import semantic_dedup
from transforms.curation.chain import REASONS, funnel
from transforms.curation.curate import Curate
from transforms.curation.decontamination import build_index, eval_file_texts
from transforms.curation.notes import JUDGMENTS_WITHOUT_CANDIDATE, described
from transforms.curation.plan import CurationPlan
from transforms.io import devices, faults
from transforms.io.layout import Layout
from transforms.io.model_io import check_loadable, model_sha256
from transforms.io.parquet_io import (
    SHARD_GLOB,
    TEMP_PREFIX,
    WriteSortedShards,
    clear_shards,
    file_sha256,
    read_json,
    read_rows,
    read_table,
    shard_entries,
    write_atomically,
    write_manifest,
)
from transforms.judges.calibration import judges_below_floor
from transforms.judges.contract import prompt_text

log = logging.getLogger("selfsift")
# A complete run has no judgment without its candidate; more than this share means the judgments
# were made for other candidates than these.
MAX_ORPHAN_SHARE = 0.01


class JudgeRefused(RuntimeError):
    pass


class MismatchedJudgments(ValueError):
    pass


def check_judges(config: Config, iteration: str) -> None:
    """Refuses, before anything is written, a deciding judge model whose calibration is below the floor: against
    the labels file when `judge.calibration.labels` is set, else against the verifier; and one with neither to be
    calibrated against."""
    cfg = config.curate
    path = config.layout.calibration(iteration)[0]
    gating_models = cfg.calibrated_gating(config.judge)
    if not gating_models:
        return
    if not path.is_file():
        raise JudgeRefused(f"{path}: calibration report not found; run `selfsift judge --iteration {iteration}`")
    report = json.loads(path.read_text())
    labels_file = config.judge.calibration.labels
    if labels_file:
        against, judges = f"the labels in {labels_file}", labels_calibration(report, labels_file, path, iteration)
    elif report.get("verifier_labels") == 0:
        raise JudgeRefused(
            f"curate refuses to let {', '.join(gating_models)} decide uncalibrated: the verifier could label none of "
            f"the candidates of {iteration} (their prompts have no constraints to verify; {path}) and no labels file "
            f"is set. Either set judge.calibration.labels to a file of answers labeled good or bad (prompt, response, "
            f"label) and rerun `selfsift judge --iteration {iteration}`, or list them under "
            f"curate.allow_low_auc_judges to use them uncalibrated.")
    else:
        against, judges = "the verifier", report["judges"]
    problems = judges_below_floor(judges, gating_models, cfg.judge_auc_floor, against)
    if problems:
        labels_way = "" if labels_file else ", calibrate them on answers labeled good or bad (judge.calibration.labels)"
        raise JudgeRefused(
            f"curate refuses to select with judges that do not agree with {against} ({path}):\n"
            + "\n".join(f"  - {p}" for p in problems)
            + f"\nSet their curate.weights to 0, lower curate.judge_auc_floor{labels_way}, or list them under "
              "curate.allow_low_auc_judges to use them anyway.")


def labels_calibration(report: dict, labels_file: str, path, iteration: str) -> dict:
    """The report's per-judge calibration against the labels file, refused when it was measured on another file or
    on another version of it (DVC does not watch the file)."""
    rerun = f"rerun `selfsift judge --iteration {iteration}` (with DVC: `dvc repro -s -f judge@{iteration}`)"
    labels = report.get("labels") or {}
    if labels.get("file") != labels_file:
        raise JudgeRefused(f"{path} holds no calibration against judge.calibration.labels ({labels_file}); {rerun}")
    if not Path(labels_file).is_file():
        raise JudgeRefused(f"judge.calibration.labels: {labels_file}: file not found")
    if file_sha256(labels_file) != labels["sha256"]:
        raise JudgeRefused(f"{labels_file} has changed since the judges were calibrated against it ({path}); {rerun}")
    return labels["judges"]


def decontamination_index(config: Config) -> dict:
    cfg, layout = config.curate.decontamination, config.layout
    if not cfg.enabled:
        return {}
    sources = [(f"{name}:{row['prompt_id']}", prompt_text(row))
               for name in config.evaluate.eval_sets() for row in read_rows(layout.prompts(name))]
    for path in cfg.extra_eval_files:
        sources += eval_file_texts(path)
    train = [prompt_text(row) for row in read_rows(layout.prompts("train"))]
    return build_index(sources, cfg.ngram, shared_with_training=train)


def plan_of(config: Config, iteration: str) -> CurationPlan:
    sem = config.curate.semantic_dedup
    if sem.enabled:
        try:
            check_loadable(sem.model, config.security.load_policy())  # a local folder or one under a remote root
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"curate.semantic_dedup.model: {exc} (run `make embedder`)") from None
    return CurationPlan(config.curate, decontamination_index(config), config.curate.control_rows.get(iteration, 0),
                        config.seed, config.security.load_policy())


def sources(config: Config, iteration: str) -> list[tuple[str, str]]:
    """(candidates, their judgments) folders curate reads: the sampled candidates and, with `revise.enabled`, the
    revisions it made of the failed ones (pipelines/graphs/revision.py)."""
    layout = config.layout
    found = [(layout.candidates(iteration), layout.judgments(iteration))]
    if config.revise.enabled:
        found.append((layout.revisions(iteration), layout.revision_judgments(iteration)))
    return found


def graph(config: Config, iteration: str, plan: CurationPlan):
    """The Beam graph of this stage, as a function that adds it to a pipeline."""
    layout, num_shards = config.layout, config.curate.num_shards

    def build(p):
        folders = dict(zip(("", "Revised"), sources(config, iteration)))
        candidates = [p | f"Read{tag}Candidates" >> beam.io.ReadFromParquet(f"{c}/{SHARD_GLOB}")
                      for tag, (c, _) in folders.items()] | "AllCandidates" >> beam.Flatten()
        judgments = [p | f"Read{tag}Judgments" >> beam.io.ReadFromParquet(f"{j}/{SHARD_GLOB}")
                     for tag, (_, j) in folders.items()] | "AllJudgments" >> beam.Flatten()
        prompts = p | "ReadPrompts" >> beam.io.ReadFromParquet(layout.prompts("train"))
        curated = (candidates, judgments, prompts) | "Curate" >> Curate(plan)
        _ = curated["notes"] | "WriteNotes" >> beam.Map(write_notes, path=notes_file(layout.shards(iteration)))
        _ = curated["kept"] | "WriteKept" >> WriteSortedShards(layout.shards(iteration), SHARD_ROW, "candidate_id",
                                                               num_shards)
        _ = curated["rejected"] | "WriteRejected" >> WriteSortedShards(layout.rejected(iteration), REJECTED_ROW,
                                                                       "candidate_id", num_shards)
        if "pairs" in curated:
            _ = curated["pairs"] | "WritePairs" >> WriteSortedShards(layout.pairs(iteration), PAIR, "pair_id",
                                                                     num_shards)

    return build


def main(config: Config, iteration: str, beam_args: list[str]) -> dict:
    with guarded("curate", iteration, config):
        return _curate(config, iteration, beam_args)


def _curate(config: Config, iteration: str, beam_args: list[str]) -> dict:
    check_judges(config, iteration)
    if config.curate.semantic_dedup.enabled:  # before anything is cleared
        devices.check_available(config.curate.semantic_dedup.device, semantic_dedup.WHERE)
    plan = plan_of(config, iteration)
    revised = revision.revise(config, iteration, beam_args) if config.revise.enabled else None
    layout = config.layout
    for directory in (layout.shards(iteration), layout.rejected(iteration), layout.pairs(iteration)):
        clear_shards(directory)
    run_pipeline(graph(config, iteration, plan), beam_args)
    manifest = build_manifest(config, iteration, plan, take_notes(layout.shards(iteration)))
    if revised is not None:
        manifest["revision"] = {key: revised[key] for key in ("rows", "parents", "model_sha256")}
    for line in described(manifest["notes"]):
        log.warning("curate@%s: %s", iteration, line)
    faults.reached("before_manifest")
    write_manifest(layout.shards(iteration), manifest)
    return manifest


def notes_file(kept_dir: str) -> str:
    """Where the pipeline leaves its notes for the manifest (a temporary name: a rerun clears it)."""
    return FileSystems.join(kept_dir, f"{TEMP_PREFIX}notes.json")


def write_notes(notes: dict, path: str) -> None:
    write_atomically(path, json.dumps(notes, sort_keys=True).encode())


def take_notes(kept_dir: str) -> dict:
    """The notes the pipeline left, removed from the folder: the manifest holds them from now on."""
    path = notes_file(kept_dir)
    notes = read_json(path)
    if notes is None:
        raise RuntimeError(f"curate left no notes at {path}")
    FileSystems.delete([path])
    return notes


def check_orphans(orphans: dict, judgments: int, config: Config, iteration: str) -> None:
    if orphans["count"] > MAX_ORPHAN_SHARE * judgments:
        layout = config.layout
        raise MismatchedJudgments(
            f"{orphans['count']} of {judgments} judgments in {layout.judgments(iteration)} name a candidate_id that "
            f"is not in {layout.candidates(iteration)} (e.g. {orphans['example']}): they were made for other "
            f"candidates; rerun `selfsift judge --iteration {iteration}`")


def build_manifest(config: Config, iteration: str, plan: CurationPlan, notes: dict) -> dict:
    layout = config.layout
    folders = sources(config, iteration)
    check_orphans(notes[JUDGMENTS_WITHOUT_CANDIDATE], sum(read_table(j, None).num_rows for _, j in folders),
                  config, iteration)
    kept_dir, rej_dir, pair_dir = layout.shards(iteration), layout.rejected(iteration), layout.pairs(iteration)
    rows_in = sum(read_table(c, None).num_rows for c, _ in folders)  # sampled and revised candidates
    reasons = Counter(read_table(rej_dir, None).column("reason").to_pylist())
    unknown = sorted(set(reasons) - set(REASONS))
    if unknown:
        raise RuntimeError(f"curate wrote rejection reasons outside the funnel: {unknown}")
    kept = read_table(kept_dir, None)
    if kept.num_rows + sum(reasons.values()) != rows_in:
        raise RuntimeError(f"curate lost records: {rows_in} candidates in, {kept.num_rows} kept + "
                           f"{sum(reasons.values())} rejected")
    kept_per_type = Counter(t for ids in kept.column("instruction_ids").to_pylist() for t in ids)
    by_origin = origin_counts(kept, read_table(rej_dir, None))
    pair_shards = shard_entries(pair_dir)
    generator = config.generator_dir(iteration)
    return {
        "stage": "curate", "iteration": iteration, "rows_in": rows_in, "rows_out": kept.num_rows,
        "rejected": {reason: reasons.get(reason, 0) for reason in REASONS},
        "funnel": funnel(rows_in, reasons),
        "kept_per_instruction_type": dict(sorted(kept_per_type.items())),
        **by_origin,
        "policy": plan.keep_reason(), "notes": notes,
        "shards": shard_entries(kept_dir), "rejected_shards": shard_entries(rej_dir),
        "pairs": sum(s["rows"] for s in pair_shards), "pair_shards": pair_shards,
        "params_hash": params_hash(config.generate, config.judge, config.curate, config.seed, config.revise),
        "generator_model": generator, "generator_model_sha256": model_sha256(generator),
        "git_revision": git_revision(),
    }


def funnels_by(column: str, kept, rejected) -> dict:
    """{value of `column`: its funnel} for each value among the rows that reached curate. Every row leaves
    once, so a value's rows in are its kept and rejected rows."""
    kept_values = kept.column(column).to_pylist()
    rejections = list(zip(rejected.column(column).to_pylist(), rejected.column("reason").to_pylist(), strict=True))
    funnels = {}
    for value in sorted(set(kept_values) | {v for v, _ in rejections}, key=str):
        reasons = Counter(reason for v, reason in rejections if v == value)
        funnels[value] = funnel(kept_values.count(value) + sum(reasons.values()), reasons)
    return funnels


def origin_counts(kept, rejected) -> dict:
    """The funnel of each origin (sampled, revised: schemas/reasons.py ORIGINS) and of each generate
    round (generate.budget adaptive), and each origin's kept rows per instruction type."""
    by_origin = funnels_by("origin", kept, rejected)
    funnels = {origin: by_origin[origin] for origin in ORIGINS if origin in by_origin}
    origins, types = kept.column("origin").to_pylist(), kept.column("instruction_ids").to_pylist()
    per_type = {origin: dict(sorted(Counter(t for o, ids in zip(origins, types, strict=True) if o == origin
                                            for t in ids).items())) for origin in funnels}
    by_round = funnels_by("generation_round", kept, rejected)
    return {"kept_per_origin": {o: f[-1]["out"] for o, f in funnels.items()}, "funnel_per_origin": funnels,
            "kept_per_instruction_type_and_origin": per_type,
            "funnel_per_generation_round": {str(r): f for r, f in by_round.items()}}


def funnel_table(manifest: dict) -> str:
    lines = [f"{'step':<18}{'in':>7}{'rejected':>10}{'out':>7}   reasons"]
    for step in manifest["funnel"]:
        dropped = {r: n for r, n in step["rejected"].items() if n}
        lines.append(f"{step['step']:<18}{step['in']:>7}{sum(dropped.values()):>10}{step['out']:>7}   "
                     + ", ".join(f"{r} {n}" for r, n in dropped.items()))
    lines.append(f"kept {manifest['rows_out']} of {manifest['rows_in']}; {manifest['pairs']} preference pairs")
    if len(manifest["kept_per_origin"]) > 1:
        lines.append("kept by origin: " + ", ".join(
            f"{origin} {kept} of {manifest['funnel_per_origin'][origin][0]['in']}"
            for origin, kept in manifest["kept_per_origin"].items()))
    if len(rounds := manifest["funnel_per_generation_round"]) > 1:
        lines.append("kept by generate round: " + ", ".join(f"{r}: {f[-1]['out']} of {f[0]['in']}" for r, f in rounds.items()))
    return "\n".join(lines)


def _run(args, config, beam):
    manifest = main(config, iteration_of(args, config), beam)
    print(funnel_table(manifest))
    return {k: manifest[k] for k in ("rows_in", "rows_out", "pairs", "kept_per_instruction_type", "revision")
            if k in manifest}


STAGE = Stage(
    "curate", "filter and deduplicate into shards (Beam)", _run,
    # seed: control samples; revise: with generate's sampling; evaluate.sets: decontaminated against too
    params=("curate", "seed", "judge", "revise", "generate", "evaluate.sets"),
    reads=lambda where: [where.layout.prompts_folder(),  # train, and every eval set (decontamination)
                         where.layout.candidates(where.iteration), where.layout.judgments(where.iteration),
                         str(Layout.calibration(where.iteration)[0]), where.generator_model],  # the model revises
    writes=lambda where: [Out(where.layout.shards(where.iteration)), Out(where.layout.rejected(where.iteration)),
                          Out(where.layout.pairs(where.iteration))],
    consumes=lambda where: where.layout.manifest(where.layout.judgments(where.iteration)),
    produces=lambda where: where.layout.manifest(where.layout.shards(where.iteration)),
    each_iteration=True, beam=True)
