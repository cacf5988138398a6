"""Stage `report`: this run's record, and a summary of every recorded run with figures.

Each run (a named parameter set, `report.run`, and a seed) leaves `reports/runs/<run>-seed<seed>.json`:
accuracy per iteration on both eval sets, the curation funnel, judge calibration, stage wall times
and training tokens. The summary (`reports/summary.md`, PNGs in `reports/figures/`, CSVs in
`reports/plots/` for `dvc plots show`) groups the records by run: mean and spread over seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.config import Config, iteration_name
from pipelines.run_guard import stage_times
from transforms.parquet_io import write_atomically
from pipelines.report_data import write_plot_data
from pipelines.report_figures import write_figures
from pipelines.report_summary import render_summary

RUNS = Path("reports/runs")
REPORTS = Path("reports")
PARAMS_SHOWN = {
    "base_model": ("init",),
    "generate": ("candidates_per_prompt", "temperature", "max_new_tokens"),
    "curate": ("control", "max_per_prompt"),
    "finetune": ("method", "start_from", "data", "replay_fraction", "learning_rate", "epochs"),
}


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def current_metrics(name: str, model_dir: str) -> dict | None:
    """The iteration's metrics, if they measured the model now in `model_dir` (not a stale file
    from another run that got further)."""
    metrics = _json(Path(f"metrics/{name}.json"))
    model = _json(Path(model_dir, "selfsift_model.json")) or {}
    return metrics if metrics and metrics.get("model_sha256") == model.get("weights_sha256") else None


def iteration_record(config: Config, name: str) -> dict:
    """What this workspace holds about one iteration; absent parts (a loop that stopped) are None."""
    manifest = _json(Path(f"data/shards/{name}/manifest.json")) or {}
    model = _json(Path(f"models/{name}/selfsift_model.json")) or {}
    judges = (_json(Path(f"reports/judges/{name}.json")) or {}).get("judges", {})
    return {
        "iteration": int(name[5:]),
        "metrics": current_metrics(name, config.model_dir("base" if name == "iter-000" else name)),
        "candidates": manifest.get("rows_in"),
        "kept": manifest.get("rows_out"),
        "pairs": manifest.get("pairs"),
        "funnel": manifest.get("funnel"),
        "judges": {judge: {k: v for k, v in stats.items() if k.startswith(("roc_auc", "histogram"))}
                   for judge, stats in judges.items()},
        "train_rows": model.get("rows"),
        "train_tokens": model.get("train_tokens"),
    }


def run_record(config: Config) -> dict:
    params = {section: {key: getattr(getattr(config, section), key) for key in keys}
              for section, keys in PARAMS_SHOWN.items()}
    names = [iteration_name(0), *config.iterations]
    return {
        "run": config.report.run, "seed": config.seed, "params": params,
        "iterations": [iteration_record(config, name) for name in names],
        "stage_seconds": stage_times(),
    }


def load_records(folder: Path = RUNS) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def main(config: Config) -> Path:
    record = run_record(config)
    RUNS.mkdir(parents=True, exist_ok=True)
    write_atomically(str(RUNS / f"{record['run']}-seed{record['seed']}.json"),
                     (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return render(load_records(), record, REPORTS)


def render(records: list[dict], current: dict, out: Path) -> Path:
    figures = write_figures(records, current, out / "figures")
    write_plot_data(records, current, out / "plots")
    summary = out / "summary.md"
    write_atomically(str(summary), render_summary(records, current, figures, out).encode())
    return summary
