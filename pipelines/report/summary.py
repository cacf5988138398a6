"""reports/summary.md: the accuracy table over all recorded runs, then this run's funnel, judges,
stage times and training data, each with its figure."""

from __future__ import annotations

import os
from pathlib import Path

from pipelines.report.data import ACCURACY, accuracy_over_seeds, auc_text, by_run, mean_and_spread, pooled_interval
from pipelines.report.health import health_section
from pipelines.report.sets import sets_section
from pipelines.report.significance import paired_section, rare_types_section
from pipelines.run.stage_times import in_pipeline_order
from schemas.reasons import ORIGINS


def _cell(values: list[float] | None, interval: tuple[float, float] | None) -> str:
    """One seed: its accuracy with the 95 % Wilson interval when the record counts prompts; several: mean (min–max)."""
    if not values:
        return "–"
    mean, low, high = mean_and_spread(values)
    if len(values) > 1:
        return f"{mean:.1f} ({low:.1f}–{high:.1f})"
    return f"{mean:.1f} [{interval[0]:.1f}–{interval[1]:.1f}]" if interval else f"{mean:.1f}"


def _gain(series: dict[int, list[float]], last: int) -> str:
    if 0 not in series or last not in series or last == 0:
        return "–"
    return f"{mean_and_spread(series[last])[0] - mean_and_spread(series[0])[0]:+.1f}"


def accuracy_table(records: list[dict]) -> list[str]:
    runs = by_run(records)
    iterations = sorted({it["iteration"] for r in records for it in r["iterations"]})
    last = iterations[-1]
    header = ["run", "seeds"]
    for split in ACCURACY:
        header += [f"{split} it {i}" for i in iterations] + [f"{split} Δ {last}−0"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for run, recs in runs.items():
        row = [run, ", ".join(str(r["seed"]) for r in recs)]
        for split, metric in ACCURACY.items():
            series, intervals = accuracy_over_seeds(recs, metric), pooled_interval(recs, split)
            row += [_cell(series.get(i), intervals.get(i)) for i in iterations] + [_gain(series, last)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def machine_text(record: dict) -> str:
    machine = record.get("machine")
    return f"{machine['cpu']}, {machine['cores']} cores" if machine else "not recorded"


def params_table(records: list[dict]) -> list[str]:
    """Settings per run, and the machine of each seed: bfloat16 results differ between CPUs."""
    lines = ["| run | settings | machine per seed |", "|---|---|---|"]
    for run, recs in by_run(records).items():
        settings = "; ".join(f"{section}.{key}={value}" for section, values in recs[0]["params"].items()
                             for key, value in values.items())
        machines = "; ".join(f"{r['seed']}: {machine_text(r)}" for r in recs)
        lines.append(f"| {run} | {settings} | {machines} |")
    return lines


def funnel_lines(current: dict) -> list[str]:
    lines = []
    for it in current["iterations"]:
        if not it["funnel"]:
            continue
        lines += [f"**Iteration {it['iteration']}**: kept {it['kept']} of {it['candidates']}, {it['pairs']} preference pairs",
                  "", "| step | in | rejected | out | reasons |", "|---|---|---|---|---|"]
        for step in it["funnel"]:
            reasons = ", ".join(f"{r} {n}" for r, n in step["rejected"].items() if n)
            lines.append(f"| {step['step']} | {step['in']} | {step['in'] - step['out']} | {step['out']} | {reasons} |")
        lines.append("")
    return lines or ["No iteration reached curation.", ""]


def judge_lines(current: dict) -> list[str]:
    lines = ["| iteration | judge | ROC AUC vs the verifier |", "|---|---|---|"]
    for it in current["iterations"]:
        for judge, stats in it["judges"].items():
            if "roc_auc" in stats:
                lines.append(f"| {it['iteration']} | {judge} | {auc_text(stats['roc_auc'])} |")
    return lines if len(lines) > 2 else ["No model judge was enabled."]


def training_lines(current: dict) -> list[str]:
    """Rows trained on, and the kept rows of each origin (sampled, revised)."""
    lines = ["| iteration | training rows | tokens (one pass) | kept by origin |", "|---|---|---|---|"]
    for it in current["iterations"]:
        if it["train_rows"] is not None:
            origins = ", ".join(f"{o} {n}" for o, n in (it.get("kept_per_origin") or {}).items()) or "–"
            lines.append(f"| {it['iteration']} | {it['train_rows']} | {it['train_tokens']} | {origins} |")
    return lines


def origins_section(records: list[dict]) -> list[str]:
    """The rows each source contributed, per run, seed and iteration; a record may hold origins the code no longer
    makes (relabeled rows, in the study's records)."""
    rows = [(r, it) for r in records for it in r["iterations"] if it.get("kept_per_origin")]
    if not rows:
        return []
    known = dict.fromkeys([*ORIGINS, *(o for _, it in rows for o in it["kept_per_origin"])])
    origins = [o for o in known if any(it["kept_per_origin"].get(o) for _, it in rows)]
    lines = ["## Training rows by source", "",
             "Rows kept per origin (`kept_per_origin` in the curate manifest; docs/signal.md).", "",
             "| run | seed | iteration | " + " | ".join(origins) + " | kept |", "|---|---|---|" + "---|" * (len(origins) + 1)]
    for record, it in rows:
        counts = " | ".join(str(it["kept_per_origin"].get(o, 0)) for o in origins)
        lines.append(f"| {record['run']} | {record['seed']} | {it['iteration']} | {counts} | {it['kept']} |")
    return lines + [""]


def render_summary(records: list[dict], current: dict, figures: dict[str, Path], out: Path) -> str:
    def image(name: str) -> str:
        return f"![{name}]({os.path.relpath(figures[name], out)})"

    times = ["| stage | seconds |", "|---|---|"] + [f"| {name} | {s:.0f} |"
                                                      for name, s in in_pipeline_order(current["stage_seconds"])]
    parts = [
        "# selfsift report", "",
        f"Written by the `report` stage from {len(records)} recorded run(s) in `reports/runs/`. Accuracy is IFEval "
        "prompt-level strict, in % of the held-out prompts; a cell with one seed has its 95 % Wilson interval in "
        "brackets, with several seeds it reads mean (min–max).", "",
        *accuracy_table(records), "", image("accuracy"), "", *paired_section(records), *rare_types_section(records),
        *origins_section(records),
        *sets_section(records), "## Runs", "", *params_table(records), "",
        f"## This run: {current['run']}, seed {current['seed']}", "", "### Curation funnel", "",
        *funnel_lines(current), image("funnel"), "", "### Judge calibration", "", *judge_lines(current), "",
        image("calibration"), "", "### Stage wall times", "", *times, "", image("stage_times"), "",
        "### Training data", "", *training_lines(current), "", image("train_tokens"), "",
        "## Model health", "", *health_section(records), image("health"), "",
    ]
    return "\n".join(parts)
