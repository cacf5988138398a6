"""The report's model-health section: one table per recorded run, and what moved against the base."""

from __future__ import annotations

from transforms.evaluation.metrics import METRIC_PREFIX
from transforms.health.metrics import HEALTH_METRICS

SPLITS = tuple(METRIC_PREFIX)


def health_of(record: dict) -> dict[int, dict]:
    """{iteration: {eval set: health}} for the iterations the run evaluated with health metrics."""
    return {it["iteration"]: it["metrics"]["health"] for it in record["iterations"]
            if it["metrics"] and it["metrics"].get("health")}


def _scale(unit: str) -> int:
    """Shares are shown in percent (points for changes); tokens and ratios as they are."""
    return 100 if unit == "share" else 1


def _number(value: float, unit: str) -> str:
    return f"{100 * value:.1f} %" if unit == "share" else f"{value:.1f}" if unit == "tokens" else f"{value:.3f}"


def _change(entry: dict, unit: str) -> str:
    text = f"{entry['delta']:+.3f}" if unit == "ratio" else f"{_scale(unit) * entry['delta']:+.1f}"
    return f"**{text}**" if entry["moved"] else text


def _cell(entry: dict | None, unit: str) -> str:
    if entry is None:
        return "–"
    return _number(entry["value"], unit) + (f" ({_change(entry, unit)})" if "delta" in entry else "")


def health_table(record: dict) -> list[str]:
    health = health_of(record)
    columns = [(i, split) for split in SPLITS for i in sorted(health)]
    lines = ["| metric | " + " | ".join(f"{split} it {i}" for i, split in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for metric in HEALTH_METRICS:
        cells = [_cell(health[i].get(split, {}).get(metric.name), metric.unit) for i, split in columns]
        lines.append(f"| {metric.name} | " + " | ".join(cells) + " |")
    return lines


def moved_lines(record: dict) -> list[str]:
    lines = []
    for i, per_split in sorted(health_of(record).items()):
        for split in SPLITS:
            for metric in HEALTH_METRICS:
                entry = per_split.get(split, {}).get(metric.name)
                if entry and entry.get("moved"):
                    scale = _scale(metric.unit)
                    base = entry["value"] - entry["delta"]
                    test = f", McNemar p = {entry['p_value']:.2g}" if "p_value" in entry else ""
                    lines.append(f"- iteration {i}, {split}: {metric.description}: {_number(base, metric.unit)} → "
                                 f"{_number(entry['value'], metric.unit)} (change {scale * entry['delta']:+.3g}, "
                                 f"95 % interval {scale * entry['delta_low']:+.3g} to {scale * entry['delta_high']:+.3g}{test})")
    return lines


def health_section(records: list[dict]) -> list[str]:
    measured = [r for r in records if health_of(r)]
    if not measured:
        return ["No recorded run has health metrics yet (runs evaluated before they existed)."]
    parts = ["Per eval set and iteration (`metrics/iter-N.json`, key `health`). Shares are % of the answers, "
             "lengths in tokens; in brackets the change from the base model's answers to the same prompts, in "
             "bold when significant: McNemar's exact test p < 0.05 for shares, the 95 % paired-bootstrap interval "
             "excluding 0 for lengths and distinct-n. With this many metrics, about 1 in 20 unchanged ones is "
             "flagged by chance.", ""]
    for record in measured:
        moved = moved_lines(record)
        parts += [f"#### {record['run']}, seed {record['seed']}", "", *health_table(record), "",
                  "Moved against the base:" if moved else "Nothing moved significantly against the base.",
                  *([""] + moved if moved else []), ""]
    return parts
