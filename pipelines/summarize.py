"""Stage `summarize`: accuracy by iteration as one CSV, for `dvc plots show`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from transforms.eval_metrics import METRIC_KEYS

COLUMNS = ["iteration"] + list(METRIC_KEYS) + ["ood_" + k for k in METRIC_KEYS]


def main(metrics_dir: str = "metrics", out: str = "reports/accuracy_by_iteration.csv") -> Path:
    files = sorted(Path(metrics_dir).glob("iter-*.json"))
    if not files:
        raise FileNotFoundError(f"{metrics_dir}: no iter-*.json metrics to summarize")
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for file in files:
            metrics = json.loads(file.read_text())
            writer.writerow({"iteration": int(file.stem[5:]), **{k: metrics[k] for k in COLUMNS[1:]}})
    return path
