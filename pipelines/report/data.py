"""The numbers behind the report: records grouped by run, statistics over seeds, and CSVs for `dvc plots`."""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from pipelines.run.stage_times import in_pipeline_order
from transforms.evaluation.metrics import METRIC_PREFIX
from transforms.health.intervals import wilson

ACCURACY = {split: f"{prefix}prompt_level_strict_acc" for split, prefix in METRIC_PREFIX.items()}
# The controlled runs (docs/results.md): always columns of the accuracy CSVs (dvc.yaml's plots name them).
STANDARD_RUNS = ("loop", "no-filter", "random-judge", "from-scratch")


def by_run(records: list[dict]) -> dict[str, list[dict]]:
    """{run name: its records, one per seed}, runs in first-seen order."""
    runs: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        runs[record["run"]].append(record)
    return dict(runs)


def accuracy_over_seeds(records: list[dict], metric: str) -> dict[int, list[float]]:
    """{iteration: [the metric, in percent, of each seed that reached it]}."""
    values: dict[int, list[float]] = defaultdict(list)
    for record in records:
        for it in record["iterations"]:
            if it["metrics"] is not None:
                values[it["iteration"]].append(100 * it["metrics"][metric])
    return dict(sorted(values.items()))


def pooled_interval(records: list[dict], split: str) -> dict[int, tuple[float, float]]:
    """{iteration: 95 % Wilson interval, in percent, of the accuracy over every seed's prompts pooled}."""
    metric, n_key = ACCURACY[split], f"{METRIC_PREFIX[split]}n_prompts"
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for record in records:
        for it in record["iterations"]:
            if it["metrics"] is not None and it["metrics"].get(n_key):
                n = it["metrics"][n_key]
                counts[it["iteration"]][0] += round(it["metrics"][metric] * n)
                counts[it["iteration"]][1] += n
    intervals = {i: wilson(*c) for i, c in counts.items()}
    return {i: (100 * low, 100 * high) for i, (low, high) in intervals.items()}


def rejections_by_reason(funnel: list[dict]) -> dict[str, int]:
    """{"step: reason": candidates rejected, ..., "kept": what the last step let through}, in chain order."""
    counts = {f"{step['step']}: {reason}": count for step in funnel for reason, count in step["rejected"].items() if count}
    return {**counts, "kept": funnel[-1]["out"]}


def mean_and_spread(values: list[float]) -> tuple[float, float, float]:
    """(mean, min, max)."""
    return statistics.fmean(values), min(values), max(values)


def auc_text(auc: float | None) -> str:
    """None when one class is missing (every candidate passed, or none did)."""
    return "n/a" if auc is None else f"{auc:.3f}"


def _write_csv(path: Path, header: list[str], rows: Iterable[Sequence]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def write_roc_curves(current: dict, out: Path) -> None:
    """One CSV per model judge and iteration (`roc/<iteration>-<judge>.csv`), for `dvc plots show`."""
    out.mkdir(parents=True, exist_ok=True)  # even empty (no judge model, or one verifier class): dvc.yaml names it
    for stale in out.glob("*.csv"):
        stale.unlink()
    for it in current["iterations"]:
        for judge, stats in it["judges"].items():
            if curve := stats.get("roc_curve"):
                _write_csv(out / f"iter-{it['iteration']:03d}-{judge}.csv", ["fpr", "tpr", "threshold"],
                           zip(curve["fpr"], curve["tpr"], curve["threshold"], strict=True))


def write_plot_data(records: list[dict], current: dict, out: Path) -> None:
    """accuracy_<set>.csv (iteration x run means), funnel.csv, rejections.csv, roc/, stage_times.csv, train_tokens.csv."""
    runs = by_run(records)
    for split, metric in ACCURACY.items():
        means = {run: {i: mean_and_spread(v)[0] for i, v in accuracy_over_seeds(recs, metric).items()}
                 for run, recs in runs.items()}
        columns = list(STANDARD_RUNS) + [r for r in runs if r not in STANDARD_RUNS]
        iterations = sorted({i for m in means.values() for i in m})
        _write_csv(out / f"accuracy_{split}.csv", ["iteration", *columns],
                   [[i, *(round(means[r][i], 2) if i in means.get(r, {}) else "" for r in columns)]
                    for i in iterations])
    _write_csv(out / "funnel.csv", ["iteration", "step", "rows_out"],
               [[it["iteration"], step["step"], step["out"]] for it in current["iterations"] if it["funnel"]
                for step in it["funnel"]])
    _write_csv(out / "rejections.csv", ["iteration", "outcome", "candidates"],
               [[it["iteration"], outcome, count] for it in current["iterations"] if it["funnel"]
                for outcome, count in rejections_by_reason(it["funnel"]).items()])
    write_roc_curves(current, out / "roc")
    _write_csv(out / "stage_times.csv", ["stage", "seconds"], in_pipeline_order(current["stage_seconds"]))
    _write_csv(out / "train_tokens.csv", ["run", "seed", "iteration", "train_tokens"],
               [[r["run"], r["seed"], it["iteration"], it["train_tokens"]] for r in records for it in r["iterations"]
                if it["train_tokens"] is not None])


def _dvc_plot(title: str, template: str, x: str, y: dict) -> dict:
    return {title: {"template": template, "x": x, "y": y}}


# dvc.yaml's plots of the files write_plot_data writes (`dvc plots show`)
DVC_PLOTS = (
    _dvc_plot("accuracy on eval (prompt-level strict, %, mean over seeds)", "linear", "iteration",
              {"reports/plots/accuracy_eval.csv": list(STANDARD_RUNS)}),
    _dvc_plot("accuracy on eval_ood (prompt-level strict, %, mean over seeds)", "linear", "iteration",
              {"reports/plots/accuracy_eval_ood.csv": list(STANDARD_RUNS)}),
    _dvc_plot("curation funnel (rows remaining after each step)", "bar_horizontal", "rows_out",
              {"reports/plots/funnel.csv": "step"}),
    _dvc_plot("curation outcome (candidates rejected by step and reason, and kept)", "bar_horizontal", "candidates",
              {"reports/plots/rejections.csv": "outcome"}),
    {"reports/plots/roc": {"template": "simple", "x": "fpr", "y": "tpr"}},  # each model judge's ROC curve, per iteration
    _dvc_plot("stage wall time (seconds)", "bar_horizontal", "seconds", {"reports/plots/stage_times.csv": "stage"}),
    _dvc_plot("training tokens (one pass)", "scatter", "iteration", {"reports/plots/train_tokens.csv": "train_tokens"}),
)
