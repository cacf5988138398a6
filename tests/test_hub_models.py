"""Models named by a Hub id (hf://OWNER/NAME@COMMIT), downloaded from a loopback stand-in for the Hub
(tests/fake_hub.py) by a fresh process with the environment a user sets (HF_ENDPOINT, HF_TOKEN,
HF_HUB_OFFLINE): pinned by default, fetched once with only what loading needs, checked on every later
use without the network, and refused with the param named when they cannot be used.

Once a model is downloaded, later uses need no network, so those run here in the test's own process,
which is offline (tests/conftest.py sets HF_HUB_OFFLINE)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.config import MODEL_PARAMS, ConfigError, load
from pipelines.stages import prepare_model
from pipelines.stages.judge import model_handlers
from tests.fake_hub import FakeHub
from tests.stage_fixtures import chdir, write_params
from tests.test_scoring_models import build_tiny_reward_model
from transforms.io.hub_models import HubModelUnavailable
from transforms.io.layout import MODEL_SUMMARY, Layout
from transforms.io.model_files import HUB_ID, HUB_REVISION
from transforms.io.model_io import ModelRefused, model_sha256
from transforms.publishing.dataset_card import base_model_name

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_planted_token_for_hub_models"
OTHER_COMMIT = "0123456789abcdef0123456789abcdef01234567"
FETCH = """import sys
from transforms.io.model_io import local_model_dir
try:
    for source in sys.argv[1:]:
        print(local_model_dir(source))
except (FileNotFoundError, ValueError) as exc:
    sys.exit(f"error: {exc}")
"""


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def tiny_files(tiny_model_dir) -> dict[str, bytes]:
    return folder_files(tiny_model_dir)


@pytest.fixture
def hub():
    with FakeHub() as fake:
        yield fake


@pytest.fixture
def project(tmp_path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def run(project: Path, hub: FakeHub, *args: str, offline: bool = False, token: str | None = None):
    """`python ARGS` in the project folder, as a user would run it against the Hub stand-in."""
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    env.update(PYTHONPATH=str(REPO), HF_ENDPOINT=hub.url, HF_HOME=str(project.parent / ".hf-home"),
               HF_HUB_OFFLINE="1" if offline else "0", HF_HUB_DISABLE_PROGRESS_BARS="1")
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run([sys.executable, *args], cwd=project, env=env, capture_output=True, text=True, timeout=300)


def fetch(project: Path, hub: FakeHub, *sources: str, **kwargs):
    return run(project, hub, "-c", FETCH, *sources, **kwargs)


def selfsift(project: Path, hub: FakeHub, *args: str, **kwargs):
    return run(project, hub, "-m", "pipelines.cli", *args, **kwargs)


def downloaded(project: Path, repo_id: str, commit: str) -> Path:
    return project / Layout.hub_model(repo_id, commit)


def with_auto_map(files: dict[str, bytes]) -> dict[str, bytes]:
    config = json.loads(files["config.json"])
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_tiny.TinyForCausalLM"}
    return {**files, "config.json": json.dumps(config).encode(), "modeling_tiny.py": b"raise SystemExit('ran')\n"}


def test_pinned_download_writes_the_folder_with_hub_id_revision_and_checksums(project, hub, tiny_files):
    commit = hub.add_model("owner/tiny", tiny_files)
    result = fetch(project, hub, f"hf://owner/tiny@{commit}")
    assert result.returncode == 0, result.stderr
    folder = downloaded(project, "owner/tiny", commit)
    assert Path(result.stdout.strip()) == folder.resolve()
    summary = json.loads((folder / MODEL_SUMMARY).read_text())
    assert (summary[HUB_ID], summary[HUB_REVISION]) == ("owner/tiny", commit)
    assert summary["files"] == {name: hashlib.sha256(content).hexdigest() for name, content in tiny_files.items()}
    assert folder_files(folder) == {**tiny_files, MODEL_SUMMARY: (folder / MODEL_SUMMARY).read_bytes()}
    assert sorted(p.name for p in folder.parent.iterdir()) == [commit]  # no staging folder left beside it


def test_only_weights_configs_and_tokenizer_files_are_fetched(project, hub, tiny_files):
    commit = hub.add_model("owner/tiny", {**tiny_files, "pytorch_model.bin": b"a pickle", "modeling_tiny.py": b"code",
                                          "onnx/model.safetensors": b"nested", "README.md": b"# card"})
    assert fetch(project, hub, f"hf://owner/tiny@{commit}").returncode == 0
    assert sorted(set(hub.model_file_requests())) == sorted(tiny_files)
    assert sorted(p.name for p in downloaded(project, "owner/tiny", commit).iterdir()) == sorted([*tiny_files,
                                                                                                   MODEL_SUMMARY])


def test_the_second_use_makes_no_request_and_a_changed_file_is_refused(project, hub, tiny_files):
    commit = hub.add_model("owner/tiny", tiny_files)
    source = f"hf://owner/tiny@{commit}"
    first = fetch(project, hub, source)
    asked = len(hub.requests)
    second = fetch(project, hub, source)
    assert second.returncode == 0 and second.stdout == first.stdout
    assert len(hub.requests) == asked
    with open(downloaded(project, "owner/tiny", commit) / "model.safetensors", "ab") as weights:
        weights.write(b"\0")
    third = fetch(project, hub, source)
    assert third.returncode != 0 and len(hub.requests) == asked
    assert "model.safetensors" in third.stderr and f"delete models/hub/owner--tiny/{commit}" in third.stderr


def test_the_token_is_sent_as_a_bearer_header_and_never_written(project, hub, tiny_files):
    commit = hub.add_model("owner/tiny", tiny_files)
    result = fetch(project, hub, f"hf://owner/tiny@{commit}", token=TOKEN)
    assert result.returncode == 0, result.stderr
    model_requests = [r for r in hub.requests if "owner/tiny" in r["path"]]
    assert model_requests and all(r["headers"].get("authorization") == f"Bearer {TOKEN}" for r in model_requests)
    assert TOKEN not in result.stdout + result.stderr
    written = [p for p in project.parent.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]
    assert not written


@pytest.mark.parametrize("key", MODEL_PARAMS)
@pytest.mark.parametrize("source", ["hf://owner/tiny", "hf://owner/tiny@main", "hf://owner/tiny@v1.0"])
def test_an_unpinned_hub_model_is_refused_at_config_load_naming_the_param(tmp_path, key, source):
    data = {"seed": 1, "base_model": {"source": "m.gguf"}, "iterations": {"iter-001": {"generator": "base"}}}
    section = data
    for part in key.split(".")[:-1]:
        section = section.setdefault(part, {})
    section[key.rsplit(".", 1)[1]] = source
    if key != "base_model.source":
        section["enabled"] = True  # only the models in use are checked
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load(path)
    message = str(err.value)
    assert f"{key}: {source} is not pinned" in message
    assert "hf://owner/tiny@COMMIT" in message and "security.allow_unpinned: true" in message
    section[key.rsplit(".", 1)[1]] = f"hf://owner/tiny@{OTHER_COMMIT}"
    path.write_text(yaml.safe_dump(data))
    load(path)  # pinned: accepted


@pytest.mark.parametrize("source, says", [("hf://tiny@" + OTHER_COMMIT, "hf://OWNER/NAME@COMMIT"),
                                          ("hf://owner/tiny@", "hf://OWNER/NAME@COMMIT"),
                                          ("hf://owner/ti--ny@" + OTHER_COMMIT, "Cannot have -- or ..")])
def test_a_malformed_hub_id_is_refused_naming_the_param(tmp_path, source, says):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"seed": 1, "base_model": {"source": source},
                                    "iterations": {"iter-001": {"generator": "base"}}}))
    with pytest.raises(ConfigError, match="base_model.source: ") as err:
        load(path)
    assert says in str(err.value)


def test_an_allowed_unpinned_model_is_resolved_and_its_commit_recorded(project, hub, tiny_files):
    write_params(project, "hf://owner/tiny", security={"allow_unpinned": True})
    load(project / "params.yaml")
    first = hub.add_model("owner/tiny", tiny_files)
    assert fetch(project, hub, "hf://owner/tiny").returncode == 0
    assert any(r["path"].startswith("/api/models/owner/tiny") and "/tree/" not in r["path"] for r in hub.requests)
    assert json.loads((downloaded(project, "owner/tiny", first) / MODEL_SUMMARY).read_text())[HUB_REVISION] == first

    second = hub.add_model("owner/tiny", {**tiny_files, "generation_config.json": b'{"do_sample": false}'})
    result = fetch(project, hub, "hf://owner/tiny@main")
    assert result.returncode == 0 and Path(result.stdout.strip()) == downloaded(project, "owner/tiny", second).resolve()
    assert json.loads((downloaded(project, "owner/tiny", second) / MODEL_SUMMARY).read_text())[HUB_REVISION] == second
    assert downloaded(project, "owner/tiny", first).is_dir()  # the earlier commit is kept as it was

    asked = len(hub.requests)
    offline = fetch(project, hub, "hf://owner/tiny", "hf://owner/tiny@main", offline=True)
    assert offline.returncode == 0, offline.stderr  # each id names the commit it was last resolved to
    assert offline.stdout.split() == [str(downloaded(project, "owner/tiny", c).resolve()) for c in (first, second)]
    never = fetch(project, hub, "hf://owner/tiny@v2", offline=True)
    assert never.returncode != 0 and len(hub.requests) == asked
    assert "hf://owner/tiny@v2 is not pinned and was never resolved here" in never.stderr
    assert "HF_HUB_OFFLINE=0 python -m pipelines.run.fetch_models" in never.stderr


def test_fetch_models_downloads_the_hub_models_in_use_so_the_loop_runs_offline(project, hub, tiny_files):
    base = f"hf://owner/tiny@{hub.add_model('owner/tiny', tiny_files)}"
    judge = f"hf://owner/judge@{hub.add_model('owner/judge', tiny_files)}"
    unused = f"hf://owner/unused@{hub.add_model('owner/unused', tiny_files)}"
    write_params(project, base, judge={"llm_judge": {"model": judge}, "reward_model": {"enabled": False, "model": unused}},
                 curate={"semantic_dedup": {"enabled": False}})
    result = run(project, hub, "-m", "pipelines.run.fetch_models")
    assert result.returncode == 0, result.stderr
    assert [line.split(": ")[0] for line in result.stdout.splitlines()] == ["base_model.source", "judge.llm_judge.model"]
    assert sorted(p.name for p in (project / Layout.HUB_MODELS).iterdir()) == ["owner--judge", "owner--tiny"]
    with chdir(project):
        prepare_model.main(load("params.yaml"))  # offline, as `dvc repro` runs under `make repro`
    assert json.loads((project / "models" / "base" / MODEL_SUMMARY).read_text())["source"] == base


def test_fetch_models_names_the_param_of_a_model_it_cannot_fetch(project, hub, tiny_files):
    missing = f"hf://owner/missing@{OTHER_COMMIT}"
    write_params(project, f"hf://owner/tiny@{hub.add_model('owner/tiny', tiny_files)}",
                 judge={"llm_judge": {"model": missing}})
    result = run(project, hub, "-m", "pipelines.run.fetch_models")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"selfsift: error: judge.llm_judge.model: {missing} could "
                                                             f"not be fetched from {hub.url} (no such model")


def test_prepare_model_from_a_hub_source_records_its_id_and_commit(project, hub, tiny_files):
    commit = hub.add_model("owner/tiny", tiny_files)
    write_params(project, f"hf://owner/tiny@{commit}")
    result = selfsift(project, hub, "prepare-model")
    assert result.returncode == 0, result.stderr
    base = project / "models" / "base"
    summary = json.loads((base / MODEL_SUMMARY).read_text())
    assert summary["source"] == f"hf://owner/tiny@{commit}"
    assert (summary[HUB_ID], summary[HUB_REVISION]) == ("owner/tiny", commit)
    assert summary["weights_sha256"] == model_sha256(base)
    assert f"`owner/tiny`](https://huggingface.co/owner/tiny) at revision `{commit}`" in base_model_name(summary)


def test_an_auto_map_model_from_the_hub_is_refused_naming_the_param(project, hub, tiny_files):
    commit = hub.add_model("owner/custom", with_auto_map(tiny_files))
    assert fetch(project, hub, f"hf://owner/custom@{commit}").returncode == 0
    assert "modeling_tiny.py" not in hub.model_file_requests()
    write_params(project, f"hf://owner/custom@{commit}")
    with chdir(project), pytest.raises(ModelRefused) as err:
        prepare_model.main(load("params.yaml"))
    assert str(err.value).startswith("base_model.source: ")
    assert "auto_map: AutoModelForCausalLM" in str(err.value) and "security.trust_remote_code: true" in str(err.value)
    assert not (project / "models" / "base").exists()
    write_params(project, f"hf://owner/custom@{commit}", security={"trust_remote_code": True})
    with chdir(project), pytest.raises(ModelRefused, match="never downloaded from the Hub"):
        prepare_model.main(load("params.yaml"))  # its code was never fetched: no switch can make it run
    assert not (project / "models" / "base").exists()


def test_a_repo_without_safetensors_weights_is_refused_naming_the_param(project, hub, tiny_files):
    files = {name: content for name, content in tiny_files.items() if not name.endswith(".safetensors")}
    commit = hub.add_model("owner/pickled", {**files, "pytorch_model.bin": b"a pickle"})
    write_params(project, f"hf://owner/pickled@{commit}")
    result = selfsift(project, hub, "prepare-model")
    assert result.returncode == 2
    assert f"base_model.source: hf://owner/pickled@{commit} has no safetensors weights" in result.stderr
    assert "pytorch_model.bin" not in hub.model_file_requests()
    assert not list((project / Layout.hub_repo("owner/pickled")).iterdir())  # nothing half-downloaded is left


def test_a_model_not_downloaded_while_offline_names_the_param_and_the_hub_id(project):
    write_params(project, f"hf://owner/tiny@{OTHER_COMMIT}")
    with chdir(project), pytest.raises(HubModelUnavailable) as err:
        prepare_model.main(load("params.yaml"))
    message = str(err.value)
    assert message.startswith(f"base_model.source: hf://owner/tiny@{OTHER_COMMIT} is not downloaded yet")
    assert "HF_HUB_OFFLINE is set" in message and "run `HF_HUB_OFFLINE=0 python -m pipelines.run.fetch_models`" in message
    assert not (project / "models" / "base").exists()


@pytest.mark.parametrize("source, why", [("hf://owner/missing@" + OTHER_COMMIT, "no such model"),
                                         ("hf://owner/tiny@" + OTHER_COMMIT, f"has no revision '{OTHER_COMMIT}'")])
def test_a_model_the_hub_does_not_have_is_named(project, hub, tiny_files, source, why):
    hub.add_model("owner/tiny", tiny_files)
    result = fetch(project, hub, source)
    assert result.returncode != 0
    assert f"{source} could not be fetched from {hub.url}" in result.stderr and why in result.stderr


def test_judge_models_from_the_hub_build_their_handlers(project, hub, tiny_files, tmp_path):
    judge = f"hf://owner/judge@{hub.add_model('owner/judge', tiny_files)}"
    reward_files = folder_files(build_tiny_reward_model(tmp_path / "reward"))
    reward = f"hf://owner/reward@{hub.add_model('owner/reward', reward_files)}"
    assert fetch(project, hub, judge, reward).returncode == 0
    write_params(project, "m.gguf", judge={"llm_judge": {"model": judge},
                                           "reward_model": {"enabled": True, "model": reward}})
    with chdir(project):
        handlers = model_handlers(load("params.yaml"))
        loaded = {name: type(handler.load_model().model).__name__ for name, handler in handlers.items()}
    assert loaded == {"llm_judge": "LlamaForCausalLM", "reward_model": "LlamaForSequenceClassification"}


def test_a_judge_model_refused_from_the_hub_names_its_param(project, hub, tiny_files):
    custom = f"hf://owner/custom@{hub.add_model('owner/custom', with_auto_map(tiny_files))}"
    assert fetch(project, hub, custom).returncode == 0
    write_params(project, "m.gguf", judge={"llm_judge": {"model": custom}})
    with chdir(project), pytest.raises(ModelRefused, match="^judge.llm_judge.model: .*auto_map"):
        model_handlers(load("params.yaml"))


def test_models_not_in_use_need_no_pin_and_a_hub_base_model_takes_no_gguf_checksum(tmp_path):
    data = {"seed": 1, "base_model": {"source": "m.gguf"}, "iterations": {"iter-001": {"generator": "base"}},
            "judge": {"llm_judge": {"enabled": False, "model": "hf://owner/tiny"}},
            "curate": {"semantic_dedup": {"enabled": False, "model": "hf://owner/embedder"}}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load(path)  # a disabled judge's and embedder's Hub ids are never downloaded
    path.write_text(yaml.safe_dump({**data, "base_model": {"source": f"hf://owner/tiny@{OTHER_COMMIT}",
                                                           "sha256": "ab" * 32}}))
    with pytest.raises(ConfigError, match="base_model.sha256 is the checksum of a GGUF file"):
        load(path)
