"""The report's PNG figures (matplotlib, no display needed)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from pipelines.report.data import (
    ACCURACY,
    accuracy_over_seeds,
    auc_text,
    by_run,
    mean_and_spread,
    pooled_interval,
    rejections_by_reason,
)
from pipelines.report.health import SPLITS, health_of
from pipelines.run.stage_times import in_pipeline_order


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
            series, intervals = accuracy_over_seeds(recs, metric), pooled_interval(recs, split)
            xs = list(series)
            stats = [mean_and_spread(v) for v in series.values()]
            means = [s[0] for s in stats]
            errors = [[max(m - intervals[x][0], 0) if x in intervals else 0 for x, m in zip(xs, means)],
                      [max(intervals[x][1] - m, 0) if x in intervals else 0 for x, m in zip(xs, means)]]
            line = ax.errorbar(xs, means, yerr=errors, marker="o", capsize=3,
                               label=f"{run} ({len(recs)} seed{'s' * (len(recs) > 1)})").lines[0]
            if len(recs) > 1:
                ax.fill_between(xs, [s[1] for s in stats], [s[2] for s in stats], color=line.get_color(), alpha=0.2)
        ax.set_title(f"{split}: prompt-level strict accuracy")
        ax.set_xlabel("iteration")
        ax.xaxis.set_major_locator(_integer_ticks())
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("% of prompts (mean over seeds)")
    fig.text(0.01, 0.01, "bars: 95 % Wilson interval over the prompts of every seed; band: min-max over seeds",
             fontsize=7)
    axes[1].legend(fontsize=8)
    return _save(fig, path)


def funnel_figure(current: dict, path: Path) -> Path:
    """Candidates rejected at each curation step, by reason, and kept, per iteration."""
    plt = _pyplot()
    iterations = [it for it in current["iterations"] if it["funnel"]]
    counts = [rejections_by_reason(it["funnel"]) for it in iterations]
    labels = list(dict.fromkeys(label for c in counts for label in c if label != "kept")) + ["kept"]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(labels) * max(len(iterations), 1) + 1.5))
    width = 0.8 / max(len(iterations), 1)
    for n, (it, outcome) in enumerate(zip(iterations, counts, strict=True)):
        ax.barh([k + n * width for k in range(len(labels))], [outcome.get(label, 0) for label in labels], height=width,
                label=f"iteration {it['iteration']} ({it['funnel'][0]['in']} candidates)")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("candidates")
    ax.set_title(f"curation: rejected by step and reason ({current['run']}, seed {current['seed']})")
    if iterations:
        ax.legend(fontsize=8)
    return _save(fig, path)


def calibration_figure(current: dict, path: Path) -> Path:
    """Left: share of candidates the verifier passed, per judge-score bin (bins of at least 5
    candidates). Right: the judge's score distribution among verifier-passed and verifier-failed
    candidates, each normalised to sum to 1, so the smaller class is as visible as the larger."""
    plt = _pyplot()
    fig, (reliability, histograms) = plt.subplots(1, 2, figsize=(11, 4))
    for it in current["iterations"]:
        for judge, stats in it["judges"].items():
            bins, passed, failed = (stats.get(k) for k in ("histogram_bins", "histogram_verifier_passed",
                                                           "histogram_verifier_failed"))
            if not bins:
                continue
            name = f"{judge}, iteration {it['iteration']}"
            centres = [(lo + hi) / 2 for lo, hi in zip(bins, bins[1:])]
            points = [(c, p / (p + f)) for c, p, f in zip(centres, passed, failed, strict=True) if p + f >= 5]
            if points:
                reliability.plot(*zip(*points), marker="o", label=f"{name} (ROC AUC {auc_text(stats.get('roc_auc'))})")
            for counts, verdict, style in ((passed, "passed", "-"), (failed, "failed", "--")):
                if sum(counts):
                    histograms.stairs([c / sum(counts) for c in counts], bins, linestyle=style,
                                      label=f"{name}: verifier {verdict} (n={sum(counts)})")
    reliability.set_xlabel("judge score")
    reliability.set_ylabel("share passed by the verifier")
    reliability.set_ylim(0, 1)
    reliability.set_title("judge calibration against the verifier")
    histograms.set_xlabel("judge score")
    histograms.set_ylabel("share of the class")
    histograms.set_title("score distribution per verifier class")
    for ax in (reliability, histograms):
        ax.grid(alpha=0.3)
        if ax.lines or ax.patches:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no model judge was enabled", ha="center", transform=ax.transAxes)
    return _save(fig, path)


def stage_times_figure(current: dict, path: Path) -> Path:
    plt = _pyplot()
    times = in_pipeline_order(current["stage_seconds"])
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
