"""`selfsift study FILE --paired-against VARIANT ...`: each recorded run of a study against a reference
variant with the same seed, paired on the same eval prompts (B minus A, McNemar's exact test), iteration by
iteration. The answers come from each run's DVC experiment (`dvc exp run -n <variant>-seed<seed>`), read from
the local DVC cache, so this runs where the study ran. Writes reports/study_paired.json and .md."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pyarrow.parquet as pq
from dvc.api import DVCFileSystem

from pipelines.config import Config, ConfigError, iteration_name
from pipelines.report.significance import difference_text
from pipelines.study.runner import StudyRun, load_study
from transforms.evaluation.comparison import compare_answers
from transforms.evaluation.metrics import METRIC_PREFIX
from transforms.io.layout import EVAL_SPLITS, Layout

OUT = Layout.REPORTS / "study_paired.json"


def experiment_revs() -> dict[str, str]:
    """{experiment name: commit}, the newest commit when a name was run more than once."""
    lines = subprocess.run(["git", "for-each-ref", "--sort=committerdate", "--format=%(objectname) %(refname)",
                            "refs/exps"], capture_output=True, text=True, check=True).stdout.split("\n")
    return {ref.rsplit("/", 1)[1]: commit for commit, ref in (line.split() for line in lines if line)}


def eval_answers(rev: str, folder: str) -> list[dict]:
    """The eval answers an experiment left in `folder`, read from the DVC cache."""
    fs = DVCFileSystem(".", rev=rev)
    shards = sorted(path for path in fs.ls(folder, detail=False) if path.endswith(".parquet"))
    if not shards:
        raise FileNotFoundError(f"{folder} at {rev}: no eval answers")
    rows = []
    for shard in shards:
        with fs.open(shard, "rb") as f:
            rows += pq.read_table(f, columns=["prompt_id", "split", "passed"]).to_pylist()
    return rows


def _recorded_iterations(run: StudyRun) -> dict[int, dict]:
    record = json.loads(run.record.read_text())
    return {it["iteration"]: it["metrics"] for it in record["iterations"] if it["iteration"] and it["metrics"]}


def _check_against_record(result: dict, metrics: dict, name: str) -> None:
    """The answers must be the ones the run's record scored: a stale or wrong experiment would pair other answers."""
    for split, comparison in result.items():
        recorded = metrics[f"{METRIC_PREFIX[split]}prompt_level_strict_acc"]
        if abs(comparison["accuracy_b"] - recorded) > 1e-9:
            raise ConfigError(f"{name}: its experiment's {split} answers score {comparison['accuracy_b']:.4f}, its "
                              f"record {recorded:.4f}; rerun the study for this run")


def paired_against(path: str, references: list[str], evals_folder: Callable[[str], str],
                   revs: dict[str, str] | None = None) -> dict:
    """{reference: {run name: {iteration: {split: comparison}}}} for every recorded run of the study;
    `evals_folder(iteration name)` is where a run left its eval answers, `revs` {experiment name: commit}."""
    study = load_study(path)
    runs = [run for run in study if run.record.is_file()]
    if unknown := sorted(set(references) - {run.variant for run in study}):
        raise ConfigError(f"{path}: no variant named {', '.join(unknown)}")
    revs = experiment_revs() if revs is None else revs
    missing = sorted(run.name for run in runs if run.name not in revs)
    if missing:
        raise ConfigError(f"no DVC experiment for the recorded run(s) {', '.join(missing)}: their answers are not "
                          f"in this repository's cache (run `selfsift study` here, or leave them out of {path})")
    answers = {}

    def answers_of(run: StudyRun, iteration: int) -> list[dict]:
        key = (run.name, iteration)
        if key not in answers:
            answers[key] = eval_answers(revs[run.name], evals_folder(iteration_name(iteration)))
        return answers[key]

    out: dict[str, dict] = {}
    for reference in references:
        out[reference] = {}
        for ref_run in (run for run in runs if run.variant == reference):
            ref_iterations = _recorded_iterations(ref_run)
            for run in (r for r in runs if r.seed == ref_run.seed and r.variant != reference):
                iterations = _recorded_iterations(run)
                out[reference][run.name] = {}
                for iteration in sorted(set(iterations) & set(ref_iterations)):
                    rows_a, rows_b = answers_of(ref_run, iteration), answers_of(run, iteration)
                    answered = {row["split"] for row in rows_a}
                    splits = [split for split in EVAL_SPLITS if split in answered]
                    result = compare_answers(rows_a, rows_b, splits, f"{ref_run.name} vs {run.name}")
                    _check_against_record(result, iterations[iteration], run.name)
                    out[reference][run.name][iteration] = result
    return out


def paired_table(result: dict) -> str:
    lines = ["Each run minus the reference run with the same seed, paired on the same eval prompts: prompt-level "
             "strict accuracy in points, 95 % paired-bootstrap interval, McNemar's exact p; **bold** only when "
             "p < 0.05. Written by `selfsift study FILE --paired-against ...` from the runs' DVC experiments.", ""]
    for reference, runs in result.items():
        lines += [f"## Against {reference}", "", "| run | iteration | " + " | ".join(EVAL_SPLITS) + " |",
                  "|---|---|" + "---|" * len(EVAL_SPLITS)]
        for name, iterations in runs.items():
            for iteration, splits in iterations.items():
                cells = [difference_text(splits.get(split)) for split in EVAL_SPLITS]
                lines.append(f"| {name} | {iteration} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(path: str, references: list[str], config: Config) -> str:
    result = paired_against(path, references, config.layout.evals)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    table = paired_table(result)
    OUT.with_suffix(".md").write_text("# Study: paired differences between runs\n\n" + table)
    return table
