"""The report's PNG figures (matplotlib, no display needed)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from pipelines.report_data import ACCURACY, accuracy_over_seeds, auc_text, by_run, mean_and_spread
from pipelines.report_health import SPLITS, health_of


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _integer_ticks():
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def accuracy_figure(records: list[dict], path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (split, metric) in zip(axes, ACCURACY.items(), strict=True):
        for run, recs in by_run(records).items():
            series = accuracy_over_seeds(recs, metric)
            xs = list(series)
            stats = [mean_and_spread(v) for v in series.values()]
            line, = ax.plot(xs, [s[0] for s in stats], marker="o", label=f"{run} ({len(recs)} seed{'s' * (len(recs) > 1)})")
            ax.fill_between(xs, [s[1] for s in stats], [s[2] for s in stats], color=line.get_color(), alpha=0.2)
        ax.set_title(f"{split}: prompt-level strict accuracy")
        ax.set_xlabel("iteration")
        ax.xaxis.set_major_locator(_integer_ticks())
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("% of prompts (mean; band: min-max over seeds)")
    axes[1].legend(fontsize=8)
    return _save(fig, path)


def funnel_figure(current: dict, path: Path) -> Path:
    plt = _pyplot()
    iterations = [it for it in current["iterations"] if it["funnel"]]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(len(iterations), 1)
    for n, it in enumerate(iterations):
        steps = ["generated"] + [s["step"] for s in it["funnel"]]
        rows = [it["funnel"][0]["in"]] + [s["out"] for s in it["funnel"]]
        ax.barh([k + n * width for k in range(len(steps))], rows, height=width, label=f"iteration {it['iteration']}")
        ax.set_yticks(range(len(steps)), steps)
    ax.invert_yaxis()
    ax.set_xlabel("candidates remaining after the step")
    ax.set_title(f"curation funnel ({current['run']}, seed {current['seed']})")
    ax.legend(fontsize=8)
    return _save(fig, path)


def calibration_figure(current: dict, path: Path) -> Path:
    """Share of candidates the verifier passed, per judge-score bin (bins of at least 5 candidates),
    for each model judge and iteration."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for it in current["iterations"]:
        for judge, stats in it["judges"].items():
            bins, passed, failed = (stats.get(k) for k in ("histogram_bins", "histogram_verifier_passed",
                                                           "histogram_verifier_failed"))
            if not bins:
                continue
            centres = [(lo + hi) / 2 for lo, hi in zip(bins, bins[1:])]
            points = [(c, p / (p + f)) for c, p, f in zip(centres, passed, failed, strict=True) if p + f >= 5]
            if points:
                ax.plot(*zip(*points), marker="o",
                        label=f"{judge}, iteration {it['iteration']} (ROC AUC {auc_text(stats.get('roc_auc'))})")
    ax.set_xlabel("judge score")
    ax.set_ylabel("share passed by the verifier")
    ax.set_ylim(0, 1)
    ax.set_title("judge calibration against the verifier")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no model judge was enabled", ha="center", transform=ax.transAxes)
    return _save(fig, path)


def stage_times_figure(current: dict, path: Path) -> Path:
    plt = _pyplot()
    times = list(current["stage_seconds"].items())  # in pipeline order
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(times) + 1.2))
    ax.barh([name for name, _ in times], [s for _, s in times])
    ax.invert_yaxis()
    ax.set_xlabel("wall seconds (the run that made each output this run used)")
    ax.set_title("stage wall time")
    return _save(fig, path)


def train_tokens_figure(records: list[dict], path: Path) -> Path:
    plt = _pyplot()
    tokens: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        for it in record["iterations"]:
            if it["train_tokens"] is not None:
                tokens[record["run"]][it["iteration"]].append(it["train_tokens"])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / max(len(tokens), 1)
    for n, (run, per_iteration) in enumerate(tokens.items()):
        xs = sorted(per_iteration)
        ax.bar([x + n * width for x in xs], [sum(per_iteration[x]) / len(per_iteration[x]) for x in xs],
               width=width, label=run)
    ax.set_xlabel("iteration")
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.set_ylabel("tokens in one pass over the training set")
    ax.set_title("training tokens (mean over seeds)")
    if tokens:
        ax.legend(fontsize=8)
    return _save(fig, path)


ARTIFACT_RATES = ("hit_budget", "repetitive", "stray_quote", "unbalanced", "template_markup", "empty", "wrong_language")


def health_figure(records: list[dict], current: dict, path: Path) -> Path:
    """Mean answer length on each eval set by iteration for every run with health metrics, and this
    run's artifact rates on eval with their 95 % intervals."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, split in zip(axes[:2], SPLITS, strict=True):
        for record in records:
            health = health_of(record)
            xs = sorted(i for i in health if split in health[i])
            if xs:
                ax.plot(xs, [health[i][split]["length_mean"]["value"] for i in xs], marker="o",
                        label=f"{record['run']}, seed {record['seed']}")
        ax.set_title(f"{split}: mean answer length")
        ax.set_xlabel("iteration")
        ax.set_ylabel("tokens")
        ax.xaxis.set_major_locator(_integer_ticks())
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    ax = axes[2]
    health = health_of(current)
    width = 0.8 / max(len(health), 1)
    for n, (i, per_split) in enumerate(sorted(health.items())):
        entries = [per_split[SPLITS[0]][name] for name in ARTIFACT_RATES]
        values = [100 * e["value"] for e in entries]
        errors = [[100 * (e["value"] - e["low"]) for e in entries], [100 * (e["high"] - e["value"]) for e in entries]]
        ax.barh([k + n * width for k in range(len(ARTIFACT_RATES))], values, height=width, xerr=errors,
                capsize=2, label=f"iteration {i}")
    ax.set_yticks(range(len(ARTIFACT_RATES)), ARTIFACT_RATES)
    ax.invert_yaxis()
    ax.set_xlabel(f"% of {SPLITS[0]} answers (95 % Wilson interval)")
    ax.set_title(f"artifact rates ({current['run']}, seed {current['seed']})")
    if health:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no health metrics in this run", ha="center", transform=ax.transAxes)
    return _save(fig, path)


def write_figures(records: list[dict], current: dict, out: Path) -> dict[str, Path]:
    return {
        "accuracy": accuracy_figure(records, out / "accuracy.png"),
        "funnel": funnel_figure(current, out / "funnel.png"),
        "calibration": calibration_figure(current, out / "calibration.png"),
        "stage_times": stage_times_figure(current, out / "stage_times.png"),
        "train_tokens": train_tokens_figure(records, out / "train_tokens.png"),
        "health": health_figure(records, current, out / "health.png"),
    }
