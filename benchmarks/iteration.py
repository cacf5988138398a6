"""One default iteration end to end: the wall time of each stage, and where generation's time goes.

Runs iteration 1's stages (generate, judge, curate, validate, finetune, evaluate) through the CLI
in a scratch folder that links this project's base model and prompts (run `dvc repro prompts
base_model` first), so the project's own data is untouched. The judge stage also runs with every
judge model scoring every candidate (`calibration_sample: 0`) on the same candidates: the before of
calibration sampling. With --compare-generate-at REV, the generate stage of git revision REV runs
first on the same inputs. The result records the params the iteration ran with.
Run: python -m benchmarks.iteration
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from benchmarks.common import print_table, stopwatch, write_result

STAGES = ("generate", "judge", "curate", "validate", "finetune", "evaluate")
PROJECT = Path(__file__).resolve().parent.parent


def scratch_project(folder: Path, code: Path, link_prompts: bool = True) -> None:
    """A project folder running `code`'s pipelines on this project's base model (and prompts, unless told not to)."""
    shutil.copy(code / "params.yaml", folder / "params.yaml")
    (folder / "models").mkdir()
    (folder / "data").mkdir()
    os.symlink(PROJECT / "models" / "base", folder / "models" / "base")
    if link_prompts:
        os.symlink(PROJECT / "data" / "prompts", folder / "data" / "prompts")
    for name in ("pipelines", "transforms", "schemas"):  # the code under test, first on PYTHONPATH
        os.symlink(code / name, folder / name)


def judge_scoring_every_candidate(scratch: Path, now: Path, log) -> float:
    """The judge stage on `now`'s candidates with every judge model scoring every candidate."""
    folder = scratch / "judge-every-candidate"
    folder.mkdir()
    scratch_project(folder, PROJECT)
    shutil.copytree(now / "data" / "candidates", folder / "data" / "candidates")
    params = yaml.safe_load((folder / "params.yaml").read_text())
    for section in ("llm_judge", "reward_model"):
        params["judge"][section]["calibration_sample"] = 0
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return run_stage(folder, "judge", log)


def run_stage(folder: Path, stage: str, log, iteration: str = "iter-001") -> float:
    """Seconds `selfsift STAGE` took in `folder` (evaluate: of `iteration`'s model, iter-000 the base)."""
    number = str(int(iteration.split("-")[1]))
    command = [sys.executable, "-c", "from pipelines.cli import main; raise SystemExit(main())", stage,
               *(() if stage == "prompts" else ("--iteration", number if stage == "evaluate" else iteration))]
    with stopwatch() as t:
        done = subprocess.run(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONPATH": str(folder)})
    if done.returncode != 0:
        raise SystemExit(f"{stage} failed (exit {done.returncode}); see {log.name}")
    return t["seconds"]


def generation_profile(top: int = 12) -> list[dict]:
    """Top operators of the generate handler on 64 sequences (16 prompts x 4), by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.common import BASE_MODEL
    from benchmarks.generation import workload
    from transforms.generation.hf_generation import CausalLMHandler, SamplingParams

    handler = CausalLMHandler(BASE_MODEL, SamplingParams(0.8, 0.95, 0, 128), micro_batch_size=128, dtype="bfloat16")
    model = handler.load_model()
    requests = workload(16, per_prompt=4)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        handler.run_inference(requests, model)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [{"op": e.key, "self_seconds": e.self_cpu_time_total / 1e6, "share": e.self_cpu_time_total / total,
             "calls": e.count} for e in events[:top]]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--compare-generate-at", metavar="REV", help="also time this git revision's generate stage")
    parser.add_argument("--stages", nargs="*", default=list(STAGES))
    args = parser.parse_args(argv)
    if not (PROJECT / "models" / "base").exists() or not (PROJECT / "data" / "prompts").exists():
        raise SystemExit("benchmarks.iteration needs models/base and data/prompts: run `dvc repro prompts base_model`")
    result: dict = {"stages": {}}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        log = open(PROJECT / "benchmarks" / "results" / "iteration.log", "w")
        if args.compare_generate_at:
            old_code = scratch / "old-code"
            subprocess.run(["git", "worktree", "add", "--detach", str(old_code), args.compare_generate_at],
                           cwd=PROJECT, check=True, capture_output=True)
            try:
                before = scratch / "before"
                before.mkdir()
                scratch_project(before, old_code)
                seconds = run_stage(before, "generate", log)
                result["generate_before"] = {"revision": args.compare_generate_at, "seconds": seconds}
                print(f"generate at {args.compare_generate_at}: {seconds:.1f} s", flush=True)
            finally:
                subprocess.run(["git", "worktree", "remove", "--force", str(old_code)], cwd=PROJECT, check=False)
        now = scratch / "now"
        now.mkdir()
        scratch_project(now, PROJECT)
        result["params"] = yaml.safe_load((now / "params.yaml").read_text())
        for stage in args.stages:
            result["stages"][stage] = run_stage(now, stage, log)
            print(f"{stage}: {result['stages'][stage]:.1f} s", flush=True)
            if stage == "judge":
                result["judge_every_candidate"] = judge_scoring_every_candidate(scratch, now, log)
                print(f"judge, every candidate scored: {result['judge_every_candidate']:.1f} s", flush=True)
    total = sum(result["stages"].values())
    rows = [[stage, seconds, f"{seconds / total:.0%}"] for stage, seconds in result["stages"].items()]
    if "judge_every_candidate" in result:
        seconds = result["judge_every_candidate"]
        rows.append(["judge, judge models scoring every candidate (calibration_sample: 0)", seconds,
                     f"{seconds / result['stages']['judge']:.1f}x the current judge"])
    if "generate_before" in result:
        before = result["generate_before"]
        rows.append([f"generate at {before['revision']} (before)", before["seconds"],
                     f"{before['seconds'] / result['stages']['generate']:.1f}x the current generate"])
    print_table("One default iteration (iteration 1, from the base model)", ["stage", "seconds", "share"], rows)
    result["generation_profile"] = generation_profile()
    print_table("Where generation goes (torch profiler, self CPU time)", ["op", "seconds", "share", "calls"],
                [[p["op"], p["self_seconds"], f"{p['share']:.0%}", p["calls"]] for p in result["generation_profile"]])
    write_result("iteration", result)
    return result


if __name__ == "__main__":
    main()
