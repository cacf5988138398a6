"""Whether a change of code changes what the loop makes: the real `dvc repro` (two iterations, the tiny fitted
model of tests/tiny_repo.py, the repository's params) run at two revisions, each in a git worktree with its
own code, then every output file under data/, models/ and metrics/ compared by sha256.

    python -m benchmarks.same_outputs BEFORE AFTER [--scratch /tmp/selfsift-same-outputs]

Writes benchmarks/results/same_outputs-BEFORE-AFTER.json: the files identical in both, and those that differ or exist in
one run only. Not part of `make bench` (no timing; a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.common import print_table, write_result

REPO = Path(__file__).resolve().parent.parent
OUTPUTS = ("data", "models", "metrics")
BUILD = """
from pathlib import Path
from tests.tiny_model import build_tiny_model
from tests.tiny_repo import tiny_repo
tiny_repo(Path({run!r}), build_tiny_model(Path({model!r})))
"""


def sha256s(run: Path) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for top in OUTPUTS for p in sorted((run / top).rglob("*")) if p.is_file() and p.suffix != ".lock"}


def loop_at(revision: str, scratch: Path) -> dict[str, str]:
    """The sha256 of every output of the tiny loop run with `revision`'s code."""
    source, run = scratch / f"src-{revision}", scratch / f"run-{revision}"
    shutil.rmtree(run, ignore_errors=True)
    subprocess.run(["git", "worktree", "remove", "--force", str(source)], cwd=REPO, capture_output=True)
    subprocess.run(["git", "worktree", "add", "-q", "--detach", str(source), revision], cwd=REPO, check=True)
    env = {**os.environ, "PYTHONPATH": str(source), "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    model = scratch / "tiny-model" / "model"  # built once; tiny_repo fits the task model beside it
    try:
        subprocess.run([sys.executable, "-c", BUILD.format(run=str(run), model=str(model))], cwd=source, env=env,
                       check=True)
        subprocess.run(["dvc", "repro"], cwd=run, env=env, check=True, capture_output=True)
    finally:  # the run's folder stays for a look; the worktree of the code goes
        subprocess.run(["git", "worktree", "remove", "--force", str(source)], cwd=REPO, capture_output=True)
    return sha256s(run)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--scratch", default="/tmp/selfsift-same-outputs")
    args = parser.parse_args(argv)
    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    revisions = [subprocess.run(["git", "rev-parse", "--short", r], cwd=REPO, check=True, capture_output=True,
                                text=True).stdout.strip() for r in (args.before, args.after)]
    before, after = (loop_at(revision, scratch) for revision in revisions)
    result = {
        "before": revisions[0], "after": revisions[1],
        "identical": sorted(f for f in before if after.get(f) == before[f]),
        "differ": sorted(f for f in before if f in after and after[f] != before[f]),
        "only_before": sorted(set(before) - set(after)), "only_after": sorted(set(after) - set(before)),
    }
    print_table(f"the tiny loop's outputs, {revisions[0]} -> {revisions[1]}", ["files", "count"],
                [[key, len(result[key])] for key in ("identical", "differ", "only_before", "only_after")])
    write_result(f"same_outputs-{revisions[0]}-{revisions[1]}", result)
    return result


if __name__ == "__main__":
    main()
