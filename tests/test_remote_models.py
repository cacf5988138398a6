"""Model folders on a remote filesystem (gs:// on Dataflow) load through Beam's FileSystems: copied to
local disk once per process. A filesystem with its own scheme (tests/fake_remote_fs.py) stands in for GCS.

A remote folder cannot be renamed into place whole, so its summary (selfsift_model.json) vouches for
it: written last, listing every file with its sha256. Kills are simulated by making the kill points
of transforms/io/faults.py raise instead of SIGKILL: nothing on the way out touches the remote
folder, so it is left as a kill would leave it."""

import hashlib
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.fake_remote_fs import PREFIX
from transforms.io import faults, staging
from transforms.io.model_io import (
    SUMMARY,
    UntrustedModelFolder,
    load_causal_lm,
    local_model_dir,
    model_sha256,
    save_atomically,
    upload,
)


class Killed(Exception):
    pass


def kill_at(monkeypatch, point: str) -> None:
    """The n-th time `save:<point>#n` is reached, the process 'dies' (raises Killed)."""
    def kill(pid, sig):
        raise Killed(point)

    monkeypatch.setenv(faults.ENV, f"save:{point}")
    monkeypatch.setattr(faults, "os", SimpleNamespace(environ=os.environ, getpid=os.getpid, kill=kill))
    faults.set_stage("save")


def model_folder(path: Path, **files: bytes) -> Path:
    path.mkdir(parents=True)
    for name, payload in files.items():
        (path / name).write_bytes(payload)
    return path


def remote_names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def local_sha256(model_dir: Path) -> str:
    """model_sha256's definition, computed here on local files only."""
    digest = hashlib.sha256()
    for w in sorted(model_dir.glob("*.safetensors")):
        digest.update(hashlib.sha256(w.read_bytes()).hexdigest().encode())
    return digest.hexdigest()


def write_summary(folder: Path) -> None:
    """What the stages' `finish` does: a summary with the weights' hash."""
    (folder / SUMMARY).write_text(json.dumps({"weights_sha256": model_sha256(folder)}, indent=2) + "\n")


def perturbed(model):
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    return model


def test_remote_model_is_copied_once_and_loads_the_same(tmp_path, tiny_model_dir):
    remote = f"{PREFIX}{tmp_path}/bucket/base"
    upload(tiny_model_dir, remote)
    local = local_model_dir(remote)
    assert local != str(tiny_model_dir) and local_model_dir(remote) == local  # one copy per process
    assert model_sha256(remote) == model_sha256(tiny_model_dir)
    model, tokenizer = load_causal_lm(remote)
    reference, _ = load_causal_lm(tiny_model_dir)
    ids = tokenizer(["hello"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, reference(**ids).logits)
    assert local_model_dir("models/base") == "models/base"  # local paths are used in place


def test_a_saved_remote_folder_lists_every_file_and_leaves_no_staging(tmp_path, tiny_model):
    model, tokenizer = tiny_model
    bucket = tmp_path / "bucket"
    save_atomically(model, tokenizer, f"{PREFIX}{bucket}/models/iter-001", finish=write_summary)
    folder = bucket / "models/iter-001"
    summary = json.loads((folder / SUMMARY).read_text())
    assert remote_names(folder) == {*summary["files"], SUMMARY} and "model.safetensors" in summary["files"]
    for name, sha in summary["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha, name
    assert summary["weights_sha256"] == local_sha256(folder)
    assert remote_names(bucket / "models") == {"iter-001"}  # the staging prefix is gone


def test_a_resave_with_fewer_files_leaves_no_stale_file_to_change_the_hash(tmp_path, tiny_model):
    model, tokenizer = tiny_model
    remote, folder = f"{PREFIX}{tmp_path}/bucket/model", tmp_path / "bucket/model"

    def with_adapter(staged: Path) -> None:
        (staged / "adapter.safetensors").write_bytes(b"weights of an earlier save")
        write_summary(staged)

    save_atomically(model, tokenizer, remote, finish=with_adapter)
    assert "adapter.safetensors" in remote_names(folder)
    save_atomically(model, tokenizer, remote, finish=write_summary)
    assert "adapter.safetensors" not in remote_names(folder)
    assert model_sha256(remote) == json.loads((folder / SUMMARY).read_text())["weights_sha256"] == local_sha256(folder)


def test_readers_ignore_files_the_summary_does_not_list(tmp_path):
    source = model_folder(tmp_path / "local", **{"model.safetensors": b"new", "config.json": b"{}"})
    remote, folder = f"{PREFIX}{tmp_path}/bucket/model", tmp_path / "bucket/model"
    upload(source, remote)
    (folder / "old.safetensors").write_bytes(b"left by someone else")
    assert model_sha256(remote) == local_sha256(source)
    assert remote_names(Path(local_model_dir(remote))) == {"model.safetensors", "config.json", SUMMARY}


def test_readers_refuse_a_folder_its_summary_does_not_vouch_for(tmp_path):
    source = model_folder(tmp_path / "local", **{"model.safetensors": b"weights", "config.json": b"{}"})
    remote, folder = f"{PREFIX}{tmp_path}/bucket/model", tmp_path / "bucket/model"
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        model_sha256(remote)
    upload(source, remote)
    (folder / "model.safetensors").write_bytes(b"changed afterwards")
    with pytest.raises(UntrustedModelFolder, match=r"model\.safetensors has sha256 .* but selfsift_model\.json lists"):
        model_sha256(remote)
    (folder / "model.safetensors").unlink()
    with pytest.raises(UntrustedModelFolder, match="model.safetensors is listed in selfsift_model.json but missing"):
        model_sha256(remote)
    (folder / SUMMARY).write_text('{"weights_sha256": "abc"}')  # a summary from before files were listed
    with pytest.raises(UntrustedModelFolder, match="lists no files"):
        model_sha256(remote)
    (folder / SUMMARY).write_text('{"files": {"../../etc/passwd": "00"}}')
    with pytest.raises(UntrustedModelFolder, match="is not a file name"):
        model_sha256(remote)
    (folder / SUMMARY).unlink()
    with pytest.raises(UntrustedModelFolder, match="no selfsift_model.json.*transforms.io.model_io upload"):
        model_sha256(remote)


def test_a_new_save_is_read_afresh_in_the_same_process(tmp_path):
    remote = f"{PREFIX}{tmp_path}/bucket/model"
    upload(model_folder(tmp_path / "a", **{"model.safetensors": b"a"}), remote)
    first = local_model_dir(remote)
    upload(model_folder(tmp_path / "b", **{"model.safetensors": b"b"}), remote)
    assert local_model_dir(remote) != first and model_sha256(remote) == local_sha256(tmp_path / "b")


@pytest.mark.parametrize("kill", ["mid_write#2", "mid_write#4", "last"])
def test_a_save_killed_mid_upload_is_refused_until_a_retry_completes_it(tmp_path, tiny_model, monkeypatch, kill):
    """mid_write#1 is the local save; from #2 on, the upload moves staged files into place, one per
    kill point, the summary last."""
    model, tokenizer = tiny_model
    remote, folder = f"{PREFIX}{tmp_path}/bucket/model", tmp_path / "bucket/model"
    save_atomically(model, tokenizer, remote, finish=write_summary)
    old = model_sha256(remote)
    files = len(json.loads((folder / SUMMARY).read_text())["files"])
    new = perturbed(load_causal_lm(local_model_dir(remote))[0])

    kill_at(monkeypatch, f"mid_write#{files + 2}" if kill == "last" else kill)
    with pytest.raises(Killed):
        save_atomically(new, tokenizer, remote, finish=write_summary)
    assert SUMMARY not in remote_names(folder)
    with pytest.raises(UntrustedModelFolder, match="no selfsift_model.json"):
        model_sha256(remote)

    monkeypatch.delenv(faults.ENV)
    save_atomically(new, tokenizer, remote, finish=write_summary)
    assert model_sha256(remote) == local_sha256(folder) != old
    assert remote_names(folder) == {*json.loads((folder / SUMMARY).read_text())["files"], SUMMARY}
    assert remote_names(tmp_path / "bucket") == {"model"}


def test_a_save_killed_while_staging_leaves_the_old_model_whole(tmp_path, monkeypatch):
    remote = f"{PREFIX}{tmp_path}/bucket/model"
    old = model_folder(tmp_path / "old", **{"model.safetensors": b"old", "config.json": b"{}"})
    upload(old, remote)
    copies = []

    def dies_on_the_second_file(src, dst, *args):
        copies.append(src)
        if len(copies) == 2:
            raise Killed("while staging")
        dst.write(src.read())

    monkeypatch.setattr(staging.shutil, "copyfileobj", dies_on_the_second_file)
    with pytest.raises(Killed):
        upload(model_folder(tmp_path / "new", **{"model.safetensors": b"new", "config.json": b"{}"}), remote)
    assert model_sha256(remote) == local_sha256(old)  # still whole, still trusted
    monkeypatch.undo()
    upload(tmp_path / "new", remote)
    assert model_sha256(remote) == local_sha256(tmp_path / "new")
    assert remote_names(tmp_path / "bucket") == {"model"}
