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
from transforms.curation import semantic_dedup, tally
from transforms.curation.chain import REASONS, funnel
from transforms.curation.curate import Curate
from transforms.curation.decontamination import build_index, eval_file_texts
from transforms.curation.notes import JUDGMENTS_WITHOUT_CANDIDATE, NOTES, described
from transforms.curation.plan import CurationPlan
from transforms.io import devices, faults
from transforms.io.layout import Layout
from transforms.io.model_io import check_loadable, model_sha256
from transforms.io.parquet_io import (
    MAX_ROWS_PER_SHARD,
    SHARD_GLOB,
    TEMP_PREFIX,
    WriteSortedShards,
    clear_shards,
    file_sha256,
    footer_rows,
    list_shards,
    read_batches,
    read_json,
    read_rows,
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
COUNTS = "counts"  # what the pipeline leaves beside its NOTES: tally.Tally's counts


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
    train = (prompt_text(row) for row in read_batches(layout.prompts("train"), ["messages"]))
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
        kept_dir = layout.shards(iteration)
        _ = curated["notes"] | "WriteNotes" >> beam.Map(write_json, path=left_file(kept_dir, NOTES))
        _ = curated["counts"] | "WriteCounts" >> beam.Map(lambda c, path: write_json(tally.to_json(c), path),
                                                            path=left_file(kept_dir, COUNTS))
        for name, folder, schema, key in (("kept", kept_dir, SHARD_ROW, "candidate_id"),
                                          ("rejected", layout.rejected(iteration), REJECTED_ROW, "candidate_id"),
                                          ("pairs", layout.pairs(iteration), PAIR, "pair_id")):
            if name in curated:
                _ = curated[name] | f"Write{name.title()}" >> WriteSortedShards(
                    folder, schema, key, num_shards, max_rows_per_shard=MAX_ROWS_PER_SHARD)

    return build


def main(config: Config, iteration: str, beam_args: list[str]) -> dict:
    with guarded("curate", iteration, config):
        return _curate(config, iteration, beam_args)


def _curate(config: Config, iteration: str, beam_args: list[str]) -> dict:
    check_judges(config, iteration)
    if config.curate.semantic_dedup.enabled:  # before anything is cleared
        devices.check_available(config.curate.semantic_dedup.device, semantic_dedup.WHERE)
        semantic_dedup.check_scope(config.curate.semantic_dedup, sum(
            footer_rows(path) for path in list_shards(config.layout.candidates(iteration))))
    plan = plan_of(config, iteration)
    revised = revision.revise(config, iteration, beam_args) if config.revise.enabled else None
    layout = config.layout
    for directory in (layout.shards(iteration), layout.rejected(iteration), layout.pairs(iteration)):
        clear_shards(directory)
    run_pipeline(graph(config, iteration, plan), beam_args)
    kept_dir = layout.shards(iteration)
    manifest = build_manifest(config, iteration, plan, take(kept_dir, NOTES), tally.from_json(take(kept_dir, COUNTS)))
    if revised is not None:
        manifest["revision"] = {key: revised[key] for key in ("rows", "parents", "model_sha256")}
    for line in described(manifest["notes"]):
        log.warning("curate@%s: %s", iteration, line)
    faults.reached("before_manifest")
    write_manifest(layout.shards(iteration), manifest)
    return manifest


def left_file(kept_dir: str, name: str) -> str:
    """Where the pipeline leaves what the manifest reads (a temporary name: a rerun clears it)."""
    return FileSystems.join(kept_dir, f"{TEMP_PREFIX}{name}.json")


def write_json(value, path: str) -> None:
    write_atomically(path, json.dumps(value, sort_keys=True).encode())


def take(kept_dir: str, name: str):
    """What the pipeline left under `name`, removed from the folder: the manifest holds it from now on."""
    path = left_file(kept_dir, name)
    found = read_json(path)
    if found is None:
        raise RuntimeError(f"curate left no {name} at {path}")
    FileSystems.delete([path])
    return found


def check_orphans(orphans: dict, judgments: int, config: Config, iteration: str) -> None:
    if orphans["count"] > MAX_ORPHAN_SHARE * judgments:
        layout = config.layout
        raise MismatchedJudgments(
            f"{orphans['count']} of {judgments} judgments in {layout.judgments(iteration)} name a candidate_id that "
            f"is not in {layout.candidates(iteration)} (e.g. {orphans['example']}): they were made for other "
            f"candidates; rerun `selfsift judge --iteration {iteration}`")


def build_manifest(config: Config, iteration: str, plan: CurationPlan, notes: dict, counts: Counter) -> dict:
    """The manifest, from the counts the pipeline made (tally.py) and the written shards' footers: nothing here
    reads a table's rows."""
    check_orphans(notes[JUDGMENTS_WITHOUT_CANDIDATE], counts[(tally.JUDGMENTS,)], config, iteration)
    layout = config.layout
    kept_dir, rej_dir, pair_dir = layout.shards(iteration), layout.rejected(iteration), layout.pairs(iteration)
    kept_shards, rejected_shards, pair_shards = (shard_entries(d) for d in (kept_dir, rej_dir, pair_dir))
    rows_in = counts[(tally.CANDIDATES,)]  # sampled and revised candidates
    reasons: Counter = Counter()
    for key, n in counts.items():
        if key[0] == tally.REJECTED_ROWS:
            reasons[key[3]] += n
    unknown = sorted(set(reasons) - set(REASONS))
    if unknown:
        raise RuntimeError(f"curate wrote rejection reasons outside the funnel: {unknown}")
    kept_rows, rejected_rows = (sum(s["rows"] for s in shards) for shards in (kept_shards, rejected_shards))
    if kept_rows + rejected_rows != rows_in or rejected_rows != sum(reasons.values()):
        raise RuntimeError(f"curate lost records: {rows_in} candidates in, {kept_rows} kept and {rejected_rows} "
                           f"rejected in {kept_dir} and {rej_dir} ({sum(reasons.values())} rejections counted)")
    kept_per_type: Counter = Counter()
    for key, n in counts.items():
        if key[0] == tally.KEPT_TYPES:
            kept_per_type[key[2]] += n
    generator = config.generator_dir(iteration)
    return {
        "stage": "curate", "iteration": iteration, "rows_in": rows_in, "rows_out": kept_rows,
        "rejected": {reason: reasons.get(reason, 0) for reason in REASONS},
        "funnel": funnel(rows_in, reasons),
        "kept_per_instruction_type": dict(sorted(kept_per_type.items())),
        **origin_counts(counts),
        "policy": plan.keep_reason(), "notes": notes,
        "shards": kept_shards, "rejected_shards": rejected_shards,
        "pairs": sum(s["rows"] for s in pair_shards), "pair_shards": pair_shards,
        "params_hash": params_hash(config.generate, config.judge, config.curate, config.seed, config.revise),
        "generator_model": generator, "generator_model_sha256": model_sha256(generator),
        "git_revision": git_revision(),
    }


def funnels_by(position: int, counts: Counter) -> dict:
    """{origin (position 1) or generate round (position 2): its funnel}, from the tally. Every row leaves once,
    so a value's rows in are its kept and rejected rows."""
    kept: Counter = Counter()
    reasons: dict = {}
    for key, n in counts.items():
        if key[0] == tally.KEPT:
            kept[key[position]] += n
        elif key[0] == tally.REJECTED_ROWS:
            reasons.setdefault(key[position], Counter())[key[3]] += n
    return {value: funnel(kept[value] + sum(reasons.get(value, Counter()).values()), reasons.get(value, Counter()))
            for value in sorted(set(kept) | set(reasons), key=str)}


def origin_counts(counts: Counter) -> dict:
    """The funnel of each origin (sampled, revised: schemas/reasons.py ORIGINS) and of each generate
    round (generate.budget adaptive), and each origin's kept rows per instruction type."""
    by_origin = funnels_by(1, counts)
    funnels = {origin: by_origin[origin] for origin in ORIGINS if origin in by_origin}
    per_type = {origin: dict(sorted((key[2], n) for key, n in counts.items()
                                    if key[0] == tally.KEPT_TYPES and key[1] == origin)) for origin in funnels}
    by_round = funnels_by(2, counts)
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
