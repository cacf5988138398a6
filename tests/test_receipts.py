"""Receipts of remote outputs (transforms/io/receipts.py): what dvc.yaml tracks under a remote storage.root, and the
check a reading stage makes against them. The remote is a Beam filesystem of its own scheme (tests/fake_remote_fs.py)."""

import json

import pytest

from tests.fake_remote_fs import PREFIX
from transforms.io import receipts
from transforms.io.receipts import ReceiptError


@pytest.fixture
def remote(tmp_path, monkeypatch):
    """A remote folder of two files, and a project folder to keep receipts in."""
    folder = tmp_path / "bucket" / "data" / "candidates" / "iter-001"
    folder.mkdir(parents=True)
    (folder / "part-00000-of-00002.parquet").write_bytes(b"first shard")
    (folder / "manifest.json").write_text("{}")
    (folder / ".tmp-abc-part-00001-of-00002.parquet").write_bytes(b"half written")  # a writer's temporary file
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    return folder, f"{PREFIX}{folder}"


def test_a_receipt_names_every_file_with_its_size_and_digest(remote):
    folder, uri = remote
    receipt = receipts.receipt_path("data/candidates/iter-001")
    receipts.write(uri, receipt)
    recorded = json.loads(open(receipt).read())
    assert recorded["uri"] == uri
    assert [(f["file"], f["size"]) for f in recorded["files"]] == [("manifest.json", 2), ("part-00000-of-00002.parquet", 11)]
    assert recorded["files"][1]["digest"] == "sha256:" + __import__("hashlib").sha256(b"first shard").hexdigest()
    receipts.verify(receipt)  # as written


@pytest.mark.parametrize("tamper, named, why", [
    (lambda folder: (folder / "part-00000-of-00002.parquet").unlink(), "part-00000-of-00002.parquet", "is missing"),
    (lambda folder: (folder / "part-00000-of-00002.parquet").write_bytes(b"other shard"), "part-00000-of-00002.parquet",
     "changed since"),  # the same size: only the digest tells
    (lambda folder: (folder / "part-00001-of-00002.parquet").write_bytes(b"x"), "part-00001-of-00002.parquet",
     "is not in"),
])
def test_a_missing_changed_or_unexpected_remote_file_is_refused_by_name(remote, tamper, named, why):
    folder, uri = remote
    receipt = receipts.receipt_path("data/candidates/iter-001")
    receipts.write(uri, receipt)
    tamper(folder)
    with pytest.raises(ReceiptError, match=rf"{PREFIX}\S*/iter-001/{named}\W.*{why}"):
        receipts.verify(receipt)


def test_a_read_without_a_receipt_is_refused(remote):
    with pytest.raises(ReceiptError, match=r"receipts/data/judgments/iter-001.json: no receipt"):
        receipts.verify(receipts.receipt_path("data/judgments/iter-001"))


def test_a_folder_of_receipts_checks_each(remote, tmp_path):
    folder, uri = remote
    receipts.write(uri, receipts.receipt_path("data/candidates/iter-001"))
    receipts.verify("receipts/data/candidates")
    (folder / "manifest.json").unlink()
    with pytest.raises(ReceiptError, match="manifest.json is missing"):
        receipts.verify("receipts/data/candidates")


def test_what_vouches_for_a_read():
    outputs = {"data/prompts", "data/shards/iter-001", "data/shards/iter-002", "models/base"}
    assert receipts.receipt_for("data/prompts", outputs) == "receipts/data/prompts.json"
    assert receipts.receipt_for("data/prompts/train.parquet", outputs) == "receipts/data/prompts.json"  # inside one
    assert receipts.receipt_for("data/shards", outputs) == "receipts/data/shards"  # a folder of them
    assert receipts.receipt_for("models/base", outputs) == "receipts/models/base.json"


def test_a_filesystem_that_keeps_a_content_checksum_is_not_read(monkeypatch):
    """On gs:// the digest is the object's CRC32C from its metadata (Beam's FileSystems.checksum); nothing is read."""
    from apache_beam.io.filesystems import FileSystems

    asked = []
    monkeypatch.setattr(FileSystems, "checksum", lambda path: asked.append(path) or "AAAAAA==")
    monkeypatch.setattr(FileSystems, "open", lambda *a, **k: pytest.fail("read a gs:// file to hash it"))
    assert receipts.digest("gs://bucket/data/x.parquet") == "crc32c:AAAAAA=="
    assert asked == ["gs://bucket/data/x.parquet"]


LOCAL_DVC_YAML = """stages:
  generate:
    foreach: ${iterations}
    do:
      cmd: selfsift generate
      deps: [transforms/io/receipts.py]
      outs:
      - data/candidates/${key}:
          persist: true
"""
REMOTE_DVC_YAML = """stages:
  base_model:
    cmd: selfsift prepare-model
    outs:
    - receipts/models/base.json:
        cache: false
"""


@pytest.mark.parametrize("root, dvc_yaml, refused", [
    ("fakegcs://bucket/selfsift", LOCAL_DVC_YAML, "but dvc.yaml tracks local outputs"),
    ("", REMOTE_DVC_YAML, "but dvc.yaml tracks the receipts of a remote root"),
    ("fakegcs://bucket/selfsift", REMOTE_DVC_YAML, None),
    ("", LOCAL_DVC_YAML, None),
])
def test_dvc_repro_with_a_dvc_yaml_for_the_other_kind_of_root_is_refused_before_any_work(
        tmp_path, monkeypatch, root, dvc_yaml, refused):
    from types import SimpleNamespace

    from pipelines.run.remote_outputs import check_dvc_yaml

    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text(dvc_yaml)
    config = SimpleNamespace(storage=SimpleNamespace(root=root))
    check_dvc_yaml(config)  # run by hand, not by DVC: nothing to check
    monkeypatch.setenv("DVC_STAGE", "generate@iter-001")
    if refused:
        with pytest.raises(ValueError, match=rf"{refused}: write dvc.yaml again with `make docs`"):
            check_dvc_yaml(config)
    else:
        check_dvc_yaml(config)
