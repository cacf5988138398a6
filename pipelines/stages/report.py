"""Stage `report`: this run's record, and a summary of every recorded run with figures.

Each run (a named parameter set, `report.run`, and a seed) leaves `reports/runs/<run>-seed<seed>.json`:
accuracy and model health per iteration on both eval sets (and the accuracy of each eval set of your
own, `evaluate.sets`), the curation funnel, judge calibration, stage wall times, training tokens and
the machine it ran on. The summary (`reports/summary.md`,
PNGs in `reports/figures/`, CSVs in `reports/plots/` for `dvc plots show`) groups the records by
run: mean and spread over seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.config import Config, iteration_name
from pipelines.report.data import DVC_PLOTS, write_plot_data
from pipelines.report.figures import write_figures
from pipelines.report.summary import render_summary
from pipelines.run.guard import RUNS_DIR, guarded
from pipelines.run.machine import machine
from pipelines.run.stage_times import run_times
from pipelines.stage import Out, Stage, Where
from transforms.io.layout import BASE, Layout
from transforms.io.parquet_io import read_json, write_atomically

RUNS = Layout.RUNS
REPORTS = Layout.REPORTS
PARAMS_SHOWN = {
    "base_model": ("init",),
    "generate": ("candidates_per_prompt", "budget", "temperature", "max_new_tokens"),
    "revise": ("enabled",),
    "curate": ("control", "max_per_prompt"),
    "judge.heuristics": ("reject_artifacts",),
    "judge.llm_judge": ("enabled",),
    "finetune": ("method", "start_from", "data", "replay_fraction", "learning_rate", "epochs"),
}


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def reached_iterations(config: Config) -> dict[str, dict]:
    """{iteration: its manifest, model summary and metrics} for what this run's chain of models reached.

    A workspace can hold later files of another run (a loop that stopped early keeps them), so a
    part counts only when it links to the chain: a manifest whose candidates came from the generator
    now counted, a model whose iteration passed validation, metrics of exactly that model."""
    layout = config.layout
    base = read_json(layout.model_summary(layout.model(BASE))) or {}
    chain = {BASE: base.get("weights_sha256")}
    reached = {iteration_name(0): {"metrics": _metrics_of(iteration_name(0), chain["base"])}}
    for name, it in config.iterations.items():
        manifest = read_json(layout.manifest(layout.shards(name)))
        generator = chain.get(it.generator)
        if not manifest or generator is None or manifest.get("generator_model_sha256") != generator:
            break
        validated = (_json(layout.validation(name)) or {}).get("success", False)
        model = read_json(layout.model_summary(layout.model(name))) if validated else None
        reached[name] = {"manifest": manifest, "model": model}
        if model:
            chain[name] = model.get("weights_sha256")
            reached[name]["metrics"] = _metrics_of(name, chain[name])
    return reached


def _metrics_of(name: str, model_sha256: str | None) -> dict | None:
    metrics = _json(Layout.metrics(name))
    return metrics if metrics and model_sha256 and metrics.get("model_sha256") == model_sha256 else None


def iteration_record(name: str, parts: dict) -> dict:
    """One iteration's record; parts the run did not reach are None."""
    manifest, model = parts.get("manifest") or {}, parts.get("model") or {}
    judges = (_json(Layout.calibration(name)[0]) or {}).get("judges", {}) if manifest else {}
    return {
        "iteration": int(name[5:]),
        "metrics": parts.get("metrics"),
        "candidates": manifest.get("rows_in"),
        "kept": manifest.get("rows_out"),
        "kept_per_origin": manifest.get("kept_per_origin"),
        "pairs": manifest.get("pairs"),
        "funnel": manifest.get("funnel"),
        "judges": {judge: {k: v for k, v in stats.items() if k.startswith(("roc", "histogram"))}
                   for judge, stats in judges.items()},
        "train_rows": model.get("rows"),
        "train_tokens": model.get("train_tokens"),
    }


def _section(config: Config, dotted: str):
    for name in dotted.split("."):
        config = getattr(config, name)
    return config


def chain_files(config: Config, reached: dict[str, dict]) -> set[str]:
    """The files of the run's chain: its base model, and each reached iteration's shards, model and metrics."""
    layout = config.layout
    files = {layout.model_summary(layout.model(BASE))}
    for name, parts in reached.items():
        if parts.get("manifest"):
            files.add(layout.manifest(layout.shards(name)))
        if parts.get("model"):
            files |= {str(Layout.validation(name)), layout.model_summary(layout.model(name))}
        if parts.get("metrics"):
            files.add(str(Layout.metrics(name)))
    return files


def run_record(config: Config) -> dict:
    params = {section: {key: getattr(_section(config, section), key) for key in keys}
              for section, keys in PARAMS_SHOWN.items()}
    reached = reached_iterations(config)
    return {
        "run": config.report.run, "seed": config.seed, "params": params,
        "iterations": [iteration_record(name, reached.get(name, {})) for name in [iteration_name(0), *config.iterations]],
        "stage_seconds": run_times(config, RUNS_DIR, chain_files(config, reached)),
        "machine": machine(),
    }


def load_records(folder: Path = RUNS) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def main(config: Config) -> Path:
    with guarded("report", config=config):
        return _report(config)


def _report(config: Config) -> Path:
    record = run_record(config)
    RUNS.mkdir(parents=True, exist_ok=True)
    write_atomically(str(Layout.run_record(record["run"], record["seed"])),
                     (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return render(load_records(), record, REPORTS)


def render(records: list[dict], current: dict, out: Path) -> Path:
    figures = write_figures(records, current, out / "figures")
    write_plot_data(records, current, out / "plots")
    summary = out / "summary.md"
    write_atomically(str(summary), render_summary(records, current, figures, out).encode())
    return summary


STAGE = Stage(
    "report", "record this run in reports/runs/ and write reports/summary.md with figures",
    lambda args, config, beam: str(main(config)),
    params=("report", "seed"),  # the record is filed under its run and seed
    reads=lambda where: [str(Layout.metrics(where.iteration).parent), str(Layout.calibration(where.iteration)[0].parent),
                         Where.every(where.layout.shards(where.iteration)), where.layout.models()],
    writes=lambda where: [Out(str(Layout.run_record("${report.run}", "${seed}")), cache=False),
                          *(Out(str(Layout.REPORTS / name), cache=False) for name in ("summary.md", "figures", "plots"))],
    dvc_plots=DVC_PLOTS)
