"""`dvc repro` drives the loop when the data lives in a bucket: the real `dvc repro`, one iteration, on a tiny model,
with `storage.root` on a filesystem registered under its own URL scheme (tests/fake_remote_fs.py, the way Beam
registers gs://) through `beam.plugins`. DVC tracks the receipts of what lies there (transforms/io/receipts.py)."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fake_remote_fs import PREFIX
from tests.tiny_repo import tiny_repo
from transforms.io.parquet_io import read_table

ITERATIONS = {"iter-001": {"generator": "base"}}
REMOTE_OUTPUTS = ["data/candidates/iter-001", "data/evals/iter-000", "data/evals/iter-001", "data/judgments/iter-001",
                  "data/pairs/iter-001", "data/prompts", "data/rejected/iter-001", "data/shards/iter-001",
                  "models/base", "models/iter-001"]
WRITE_DVC_YAML = "from pipelines.derived.dvc_yaml import repository_dvc_yaml; open('dvc.yaml', 'w').write(repository_dvc_yaml())"


def ran(stdout: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", stdout))


def revisions(shown) -> list[dict]:
    """Every revision `dvc exp show --json` lists, experiments included, that has params."""
    found = []
    for entry in shown if isinstance(shown, list) else [shown]:
        if isinstance(entry, dict) and "rev" in entry:  # a revision; its experiments are nested in it
            if isinstance(entry.get("data"), dict) and entry["data"].get("params"):
                found.append(entry)
            found += revisions([value for key, value in entry.items() if key != "data" and isinstance(value, (list, dict))])
        elif isinstance(entry, (dict, list)):
            found += revisions(list(entry.values()) if isinstance(entry, dict) else entry)
    return found


def run(cmd: list[str], root: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def remote_repo(tmp_path_factory, tiny_model_dir):
    root, bucket = tmp_path_factory.mktemp("repo"), tmp_path_factory.mktemp("bucket")
    env = {**tiny_repo(root, tiny_model_dir, ITERATIONS), "PYTHONPATH": str(root)}  # the plugin's module, tests/
    store = f"{PREFIX}{bucket}/selfsift"
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["storage"] = {"root": store}
    params["beam"]["plugins"] = ["tests.fake_remote_fs.FakeRemoteFileSystem"]
    params["judge"]["llm_judge"]["model"] = f"{store}/models/base"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    written = run(["python", "-c", WRITE_DVC_YAML], root, env)  # what `make docs` writes for a remote root
    assert written.returncode == 0, written.stderr[-3000:]
    first = run(["dvc", "repro"], root, env)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    return root, bucket / "selfsift", env, first.stdout


def test_the_loop_runs_with_its_data_in_the_bucket_and_receipts_in_the_project(remote_repo):
    root, remote, _, stdout = remote_repo
    assert ran(stdout) >= {"base_model", "prompts", "generate@iter-001", "judge@iter-001", "curate@iter-001",
                           "validate@iter-001", "finetune@iter-001", "evaluate_base", "evaluate@iter-001"}
    assert not (root / "data").exists() and not (root / "models").exists()
    receipts = sorted(p.relative_to(root / "receipts").as_posix().removesuffix(".json")
                      for p in (root / "receipts").rglob("*.json"))
    assert receipts == REMOTE_OUTPUTS
    shards = json.loads((root / "receipts/data/shards/iter-001.json").read_text())
    assert [f["file"] for f in shards["files"]] == sorted(p.name for p in (remote / "data/shards/iter-001").iterdir())
    assert all(f["digest"].startswith("sha256:") and f["size"] > 0 for f in shards["files"])
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert sorted(o["path"] for o in lock["curate@iter-001"]["outs"]) == [
        "receipts/data/pairs/iter-001.json", "receipts/data/rejected/iter-001.json", "receipts/data/shards/iter-001.json"]
    assert lock["curate@iter-001"]["params"]["params.yaml"]["storage"]["root"].startswith(PREFIX)
    assert read_table(f"{PREFIX}{remote}/data/candidates/iter-001").num_rows == 10 * 3
    assert json.loads((root / "metrics/iter-001.json").read_text())["n_prompts"] == 6


def test_a_second_repro_runs_nothing(remote_repo):
    root, _, env, _ = remote_repo
    again = run(["dvc", "repro"], root, env)
    assert again.returncode == 0 and ran(again.stdout) == set(), again.stdout[-3000:]
    assert "up to date" in run(["dvc", "status"], root, env).stdout


def test_an_experiment_with_one_param_changed_reruns_exactly_its_stage_and_what_follows(remote_repo):
    root, _, env, _ = remote_repo
    author = {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
              for what, value in (("NAME", "selfsift test"), ("EMAIL", "test@selfsift.invalid"))}
    for command in (["add", "-A"], ["commit", "-qm", "the loop, its data in a bucket"]):
        assert run(["git", *command], root, {**env, **author}).returncode == 0
    changed = run(["dvc", "exp", "run", "-S", "curate.max_per_prompt=1"], root, {**env, **author})
    assert changed.returncode == 0, changed.stdout[-3000:] + changed.stderr[-3000:]
    assert ran(changed.stdout) == {"curate@iter-001", "validate@iter-001", "finetune@iter-001", "evaluate@iter-001",
                                   "publish", "report"}, changed.stdout[-3000:]
    shown = run(["dvc", "exp", "show", "--json"], root, env)
    assert shown.returncode == 0, shown.stderr[-3000:]
    recorded = {(rev["rev"] == "workspace", rev["data"]["params"]["params.yaml"]["data"]["curate"]["max_per_prompt"])
                for rev in revisions(json.loads(shown.stdout))}
    assert {(False, 2), (False, 1)} <= recorded  # the committed baseline, and the experiment


@pytest.mark.parametrize("output, tamper, stage, why", [
    ("data/candidates/iter-001", lambda path: path.write_bytes(path.read_bytes() + b"\0"), ["judge", "--iteration", "1"],
     "changed since"),
    ("data/judgments/iter-001", lambda path: path.unlink(), ["curate", "--iteration", "1"], "is missing"),
])
def test_an_altered_or_deleted_remote_shard_is_refused_by_the_next_stage(remote_repo, output, tamper, stage, why):
    root, remote, env, _ = remote_repo
    shard = sorted((remote / output).glob("part-*.parquet"))[0]
    kept = shard.read_bytes()
    tamper(shard)
    try:
        refused = run(["selfsift", *stage], root, env)
        assert refused.returncode == 2, refused.stderr[-3000:]
        assert re.search(rf"selfsift: error: {PREFIX}\S*/{output}/{shard.name} {why}", refused.stderr), refused.stderr[-3000:]
    finally:
        shard.write_bytes(kept)
