"""Crash safety of the real `dvc repro` loop (one iteration, tiny model): SIGKILL each stage at
several points, rerun, and the result is byte-identical to an uninterrupted run. generate and judge
reuse the shards a killed run completed; finetune resumes from its last complete checkpoint.

The uninterrupted baseline doubles as the concurrency check: a second `dvc repro` started while it
runs must fail fast on DVC's lock and change nothing.
"""

import hashlib
import json
import re
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.run.guard import RUNS_DIR
from pipelines.run.resume import Checkpoints
from tests.tiny_repo import merged_into, tiny_repo
from transforms.io.faults import ENV as KILL_AT

ITERATIONS = {"iter-001": {"generator": "base"}}
CHECKPOINT_EVERY_STEP = {"finetune": {"checkpoint_steps": 1}}  # every step but the last
KILL_POINTS = [
    "generate:start", "generate:mid_write#2", "generate:before_manifest",
    "judge:start", "judge:mid_write#2", "judge:before_manifest",
    "curate:start", "curate:mid_write#3", "curate:before_manifest",
    "finetune:start", "finetune:after_checkpoint#1", "finetune:before_manifest", "finetune:mid_write",
]
PLANTED_TOKEN = "hf_selfsiftPlantedToken0123456789abcdefXYZ"  # must never appear in any output
OUTPUTS = ("data", "models", "metrics", "reports", "publish", "dvc.lock")
DATA_DOCS = "reports/validation/iter-001"  # Great Expectations' HTML is stamped with its run time
# The report stage's outputs show each stage's wall time, which no two runs share, and DVCLive's
# training log records the trainer's runtime.
WALL_TIMES = ("reports/runs", "reports/summary.md", "reports/figures", "reports/plots", "reports/training")


def stamped(name: str) -> bool:
    return any(name == p or name.startswith(p + "/") for p in (DATA_DOCS, *WALL_TIMES))


def without_stamped_outputs(lock: bytes) -> str:
    """dvc.lock without the hashes that cover run-stamped outputs: validate's Data Docs, publish's
    dependency on the reports/validation folder that holds them, and the report stage's outputs."""
    stages = yaml.safe_load(lock)["stages"]
    for stage in stages.values():
        stage["outs"] = [o for o in stage.get("outs", []) if not stamped(o["path"])]
        stage["deps"] = [d for d in stage.get("deps", []) if d["path"] != "reports/validation"]
    return yaml.safe_dump(stages)


def dvc_repro(root: Path, env: dict, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**env, "HF_TOKEN": PLANTED_TOKEN}
    if kill_at:
        env[KILL_AT] = kill_at
    return subprocess.run(["dvc", "repro"], cwd=root, env=env, capture_output=True, text=True)


def output_hashes(root: Path) -> dict[str, str]:
    hashes = {}
    for name in OUTPUTS:
        path = root / name
        for f in sorted([path] if path.is_file() else path.rglob("*")):
            name = str(f.relative_to(root))
            if f.is_file() and not stamped(name) and f.name != ".gitignore":  # DVC's, not ours
                payload = without_stamped_outputs(f.read_bytes()).encode() if name == "dvc.lock" else f.read_bytes()
                hashes[name] = hashlib.sha256(payload).hexdigest()
    return hashes


def assert_no_partial_outputs(root: Path) -> None:
    """Everything under a final name is complete: Parquet files read, manifests match their shards,
    model folders hold their summary."""
    for f in (root / "data").rglob("*.parquet"):
        if not f.name.startswith(".tmp-"):
            pq.read_metadata(f)
    for manifest in (root / "data").rglob("manifest.json"):
        for shard in json.loads(manifest.read_text())["shards"]:
            payload = (manifest.parent / shard["file"]).read_bytes()
            assert hashlib.sha256(payload).hexdigest() == shard["sha256"], manifest
    for model in (root / "models").glob("iter-*"):
        summary = json.loads((model / "selfsift_model.json").read_text())
        assert summary["weights_sha256"], model


def leftovers(root: Path) -> list[str]:
    temporary = [p for p in root.rglob(".tmp-*")] + [p for p in (root / "models").glob(".*")]
    return [str(p.relative_to(root)) for p in temporary]


def checkpointing_repo(root: Path, tiny_model_dir: Path) -> dict:
    env = tiny_repo(root, tiny_model_dir, ITERATIONS)
    params = yaml.safe_load((root / "params.yaml").read_text())
    merged_into(params, CHECKPOINT_EVERY_STEP)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return env


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("uninterrupted")
    env = checkpointing_repo(root, tiny_model_dir)
    interrupted = tmp_path_factory.mktemp("interrupted")
    checkpointing_repo(interrupted, tiny_model_dir)  # copied now, from the same sources as the baseline
    first = subprocess.Popen(["dvc", "repro"], cwd=root, env={**env, "HF_TOKEN": PLANTED_TOKEN},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = root / ".dvc" / "tmp" / "lock"
    deadline = time.monotonic() + 120
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    started = time.monotonic()
    second = dvc_repro(root, env)
    second_seconds = time.monotonic() - started
    out, err = first.communicate()
    assert first.returncode == 0, out[-3000:] + err[-3000:]
    return root, env, second, second_seconds, out + err, interrupted


def test_a_concurrent_run_fails_fast_on_the_lock_and_damages_nothing(baseline):
    root, env, second, seconds, _, _ = baseline
    assert second.returncode != 0
    assert "lock" in (second.stdout + second.stderr).lower(), second.stderr[-2000:]
    assert seconds < 60  # fails fast, does not wait for the first run (about a minute)
    print(f"concurrent dvc repro refused in {seconds:.1f} s")
    assert "Running stage" not in second.stdout
    again = subprocess.run(["dvc", "status"], cwd=root, env=env, capture_output=True, text=True)
    assert "up to date" in again.stdout, again.stdout  # the first run's outputs are all recorded intact


def test_killed_stages_resume_to_byte_identical_outputs(baseline):
    reference, env, _, _, baseline_log, root = baseline
    logs = [baseline_log]
    survived = 0
    for point in KILL_POINTS:
        stage = point.split(":")[0]
        killed = dvc_repro(root, env, kill_at=point)
        output = killed.stdout + killed.stderr
        logs.append(output)
        assert killed.returncode != 0, f"{point}: the run was not killed (for after_checkpoint: fewer than 2 steps?)"
        assert f"failed to reproduce '{stage}@iter-001'" in output, f"{point}:\n{output[-3000:]}"
        # -9 when the shell execs the stage; 128 + 9 when a shell in between reports the signal
        assert re.search(r"exited with (-9|137)\b", output), f"{point}: not a SIGKILL:\n{output[-2000:]}"
        assert_no_partial_outputs(root)
        survived += 1
    final = dvc_repro(root, env)
    logs.append(final.stdout + final.stderr)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]

    everything = "\n".join(logs)
    for stage in ("generate", "judge", "curate", "finetune"):
        assert f"{stage}@iter-001: the previous run" in everything, f"{stage} did not report the interruption"
    resumed = re.findall(r"generate@iter-001: resuming; (\d+) of 2 shards .* saving about ([\d.]+) s", everything)
    assert [n for n, _ in resumed] == ["1", "2"], resumed  # after mid_write#2, then after before_manifest
    judged = re.findall(r"judge@iter-001: resuming; (\d+) of 2 shards .* saving about ([\d.]+) s", everything)
    assert [n for n, _ in judged] == ["1", "2"], judged  # after mid_write#2 (shard 2 of 2), then before_manifest
    trained = re.findall(r"finetune@iter-001: resuming from the checkpoint of step (\d+)", everything)
    # from step 1 after after_checkpoint#1; then twice from the last checkpoint, after before_manifest and mid_write
    assert len(trained) == 3 and trained[0] == "1", trained
    hashes = output_hashes(root)
    assert hashes == output_hashes(reference)  # the resumed fine-tune's weights and summary included
    print(f"fault injection: {survived} kill points survived; generate resumes saved "
          f"{', '.join(s for _, s in resumed)} s of generation, judge resumes {', '.join(s for _, s in judged)} s "
          f"of judging; finetune resumed from steps {', '.join(trained)}; {len(hashes)} output files byte-identical")
    assert leftovers(root) == []
    assert not (root / Checkpoints("finetune@iter-001", "").folder).exists()
    assert not list((root / RUNS_DIR).glob("*.progress.json"))

    for path in [p for name in OUTPUTS for p in ((root / name).rglob("*") if (root / name).is_dir() else [root / name])]:
        if path.is_file():
            assert PLANTED_TOKEN.encode() not in path.read_bytes(), path
    assert PLANTED_TOKEN not in everything
