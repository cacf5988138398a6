"""`selfsift publish`: the folder loads with `datasets`, its card validates, and the upload, against a
loopback stand-in for the Hub (`HF_ENDPOINT`), sends exactly the folder and never leaks the token.

Not covered: the Xet transfer protocol that huggingface_hub prefers when `hf_xet` is installed; the
test sets HF_HUB_DISABLE_XET=1 so large files go through the LFS protocol the stand-in implements.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.records import PAIR
from tests.fake_hub import FakeHub
from tests.stage_fixtures import prompt, shard_row, write_params, write_prompt_sets, write_shards
from transforms.io.parquet_io import shard_name

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_selfsiftPublishPlanted0123456789abcdefXYZ"
ITERATIONS = {"iter-001": {"generator": "base"}, "iter-002": {"generator": "iter-001"}}
TRAIN = [prompt(f"t{i}", f"Write about topic {i}.", "train") for i in range(4)]


def pair(pid: str, p: dict) -> dict:
    return {"pair_id": pid, "prompt_id": p["prompt_id"], "prompt": p["messages"],
            "chosen": [{"role": "assistant", "content": "good"}], "rejected": [{"role": "assistant", "content": "bad"}],
            "chosen_candidate_id": pid + "c", "rejected_candidate_id": pid + "r", "chosen_score": 1.0,
            "rejected_score": 0.0, "margin": 1.0, "rejected_reason": "below_threshold"}


def write_iteration(root: Path, iteration: str, kept: int, pairs: int) -> None:
    write_shards(root, iteration, [shard_row(f"{iteration}-c{i}", TRAIN[i], f"answer {iteration} {i}")
                                   for i in range(kept)])
    (root / "data/pairs" / iteration).mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([pair(f"{iteration}-p{i}", TRAIN[i]) for i in range(pairs)], schema=PAIR),
                   root / "data/pairs" / iteration / shard_name(0, 1))
    manifest = {"rows_out": kept, "rows_in": 12, "pairs": pairs, "rejected": {"below_threshold": 12 - kept},
                "funnel": [{"step": "judge policy", "in": 12, "out": kept, "rejected": {"below_threshold": 12 - kept}}],
                "policy": "all_pass over ifeval_verifier", "generator_model": "models/base",
                "generator_model_sha256": "ab" * 32, "params_hash": "cd" * 32, "git_revision": "deadbeef"}
    (root / "data/shards" / iteration / "manifest.json").write_text(json.dumps(manifest))
    (root / "reports/judges").mkdir(parents=True, exist_ok=True)
    (root / "reports/judges" / f"{iteration}.json").write_text(json.dumps(
        {"judges": {"llm_judge": {"roc_auc": 0.51, "candidates": 12}}}))
    (root / "reports/validation").mkdir(parents=True, exist_ok=True)
    (root / "reports/validation" / f"{iteration}.json").write_text(json.dumps(
        {"success": True, "failed": [], "warnings": []}))


@pytest.fixture
def project(tmp_path):
    write_params(tmp_path, "unused", iterations=ITERATIONS, publish={"repo_id": "selfsift-test/ifeval-demo"})
    write_prompt_sets(tmp_path, TRAIN, [], [])
    write_iteration(tmp_path, "iter-001", kept=3, pairs=2)
    write_iteration(tmp_path, "iter-002", kept=4, pairs=1)
    return tmp_path


def publish(root: Path, *args, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    env.update(PYTHONPATH=str(REPO), HF_HOME=str(root / ".hf-home"), HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1",
               **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "pipelines.cli", "publish", *args], cwd=root, env=env,
                          capture_output=True, text=True)


def test_dry_run_folder_loads_per_iteration_and_its_card_validates(project):
    import datasets
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    result = publish(project, "--iteration", "all", "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    folder = project / "publish"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet")) == [
        "data/iter-001/part-00000-of-00001.parquet", "data/iter-002/part-00000-of-00001.parquet",
        "pairs/iter-001/part-00000-of-00001.parquet", "pairs/iter-002/part-00000-of-00001.parquet"]
    cache = str(project / ".datasets-cache")
    for name, rows in (("iter-001", 3), ("iter-002", 4), ("default", 7), ("pairs", 3)):
        loaded = datasets.load_dataset(str(folder), name=name, cache_dir=cache)
        assert loaded["train"].num_rows == rows, name
    assert datasets.load_dataset(str(folder), name="pairs", cache_dir=cache)["train"].column_names[:3] == [
        "pair_id", "prompt_id", "prompt"]

    card = DatasetCard.load(folder / "README.md")
    assert card.data.license == "apache-2.0" and card.data.task_categories == ["text-generation"]
    assert card.data.size_categories == ["n<1K"]
    configs = MetadataConfigs.from_dataset_card_data(card.data)
    assert set(configs) == {"default", "iter-001", "iter-002", "pairs"}
    assert "| `iter-001` | 3 | 12 | 2 | passed |" in card.text and "ROC AUC" in card.text
    assert "judge policy" in card.text and "models/base" in card.text


def test_upload_sends_the_folder_and_never_the_token(project):
    with FakeHub() as hub:
        result = publish(project, "--iteration", "all", "--private",
                         env_extra={"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr[-3000:]
    folder = project / "publish"
    local = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert hub.committed_files() == local  # every file, byte for byte, and nothing else
    assert hub.validated and all(v == {"content": local["README.md"].decode(), "repoType": "dataset"}
                                 for v in hub.validated)  # the card the Hub checked is the one sent
    assert hub.created == [{"name": "ifeval-demo", "organization": "selfsift-test", "visibility": "private",
                            "type": "dataset"}]
    repo_calls = [r for r in hub.requests if "selfsift-test/ifeval-demo" in r["path"] or r["path"] == "/api/repos/create"]
    assert len(repo_calls) >= 5 and all(r["headers"].get("authorization") == f"Bearer {TOKEN}" for r in repo_calls)
    assert not any(TOKEN.encode() in r["body"] or TOKEN in r["path"] for r in hub.requests)  # only in the header
    assert TOKEN not in result.stdout + result.stderr
    for path in project.rglob("*"):
        if path.is_file() and ".hf-home" not in path.parts:
            assert TOKEN.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("args, env_extra, message", [
    (["--iteration", "7", "--dry-run"], {}, "--iteration 7: iter-007 has no curated shards to publish"),
    (["--iteration", "all"], {}, "no Hugging Face token: set HF_TOKEN"),
    (["--repo-id", "not a repo", "--dry-run"], {}, "--repo-id 'not a repo'"),
])
def test_bad_requests_fail_clearly_before_any_work(project, args, env_extra, message):
    result = publish(project, *args, env_extra=env_extra)
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not (project / "publish").exists()


def test_existing_repo_with_another_schema_is_refused(project):
    theirs = {"dataset_info": [{"config_name": "default", "features": [{"name": "text", "dtype": "string"}]}]}
    with FakeHub(existing_card=theirs) as hub:
        result = publish(project, env_extra={"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN})
    assert result.returncode == 2
    assert "already exists with a different schema for config 'default'" in result.stderr, result.stderr[-2000:]
    assert hub.commits == [] and hub.created == []
    assert TOKEN not in result.stdout + result.stderr


def test_a_hub_that_refuses_the_commit_fails_cleanly_and_keeps_the_folder(project):
    with FakeHub() as hub:
        result = publish(project, env_extra={"HF_ENDPOINT": hub.url + "/nowhere", "HF_TOKEN": TOKEN})
    assert result.returncode == 2 and "upload of publish to selfsift-test/ifeval-demo failed" in result.stderr
    assert "Traceback" not in result.stderr and TOKEN not in result.stdout + result.stderr
    assert (project / "publish/README.md").is_file()
