"""Receipts: what DVC tracks of an output that lives under a remote `storage.root`.

DVC hashes only local files, so a stage whose output is a remote folder (or file) also writes a small local
receipt, `receipts/<the output's path under the root>.json`, naming every file of it with its size and a digest:
the checksum the filesystem keeps (`crc32c:` on gs://, which costs no read) or else the content's
`sha256:`. dvc.yaml then names receipts as outputs and deps. A stage that reads the output checks it against the
receipt first and refuses a file that is missing, changed or unexpected, naming it. Why receipts rather than
DVC's own ways: docs/dataflow.md, "How DVC tracks a bucket".
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Collection
from pathlib import Path

from transforms.io.staging import replace_file

RECEIPTS = Path("receipts")  # in the project folder, beside dvc.yaml
# Schemes whose filesystem reports a checksum of the content in its metadata (Beam's FileSystems.checksum); any
# other is hashed by reading. Beam's local filesystem reports only the size.
CONTENT_CHECKSUMS = {"gs": "crc32c"}


class ReceiptError(ValueError):
    """A remote output does not match the receipt DVC tracks for it."""


def receipt_path(relative: str) -> str:
    """The receipt of the output at `relative` (a path under the storage root)."""
    return f"{RECEIPTS.as_posix()}/{relative}.json"


def receipt_for(relative: str, outputs: Collection[str]) -> str:
    """What vouches for a read at `relative`, given the outputs under the root (paths under it): a file inside an
    output is vouched for by the output's receipt, a folder holding outputs by the folder of their receipts, and
    anything else by its own receipt."""
    if relative not in outputs and posixpath.dirname(relative) in outputs:
        return receipt_path(posixpath.dirname(relative))
    if relative not in outputs and any(o.startswith(relative + "/") for o in outputs):
        return f"{RECEIPTS.as_posix()}/{relative}"
    return receipt_path(relative)


def _scheme(uri: str) -> str:
    return uri.partition("://")[0] if "://" in uri else ""


def digest(path: str) -> str:
    from apache_beam.io.filesystems import FileSystems

    algorithm = CONTENT_CHECKSUMS.get(_scheme(path))
    if algorithm:
        return f"{algorithm}:{FileSystems.checksum(path)}"
    sha = hashlib.sha256()
    with FileSystems.open(path) as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return f"sha256:{sha.hexdigest()}"


def _files(uri: str) -> dict[str, int]:
    """{name: size} of the files of a remote output: a folder's files (not hidden ones: temporary names), or a file."""
    from apache_beam.io.filesystems import FileSystems

    if not FileSystems.exists(uri):
        return {}
    found = FileSystems.match([FileSystems.join(uri, "*")])[0].metadata_list
    if not found and not uri.endswith("/"):
        single = FileSystems.match([uri])[0].metadata_list
        return {FileSystems.split(m.path)[1]: m.size_in_bytes for m in single}
    return {FileSystems.split(m.path)[1]: m.size_in_bytes for m in found
            if not FileSystems.split(m.path)[1].startswith(".")}


def _path(uri: str, name: str, is_folder: bool) -> str:
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.join(uri, name) if is_folder else uri


def _is_folder(uri: str) -> bool:
    from apache_beam.io.filesystems import FileSystems

    return bool(FileSystems.match([FileSystems.join(uri, "*")])[0].metadata_list)


def describe(uri: str) -> dict:
    """The receipt of the remote output `uri`."""
    sizes = _files(uri)
    if not sizes:
        raise FileNotFoundError(f"{uri}: the stage wrote no such output, so there is nothing to give a receipt for")
    folder = _is_folder(uri)
    return {"uri": uri, "files": [{"file": name, "size": size, "digest": digest(_path(uri, name, folder))}
                                  for name, size in sorted(sizes.items())]}


def write(uri: str, receipt: str | Path) -> None:
    payload = json.dumps(describe(uri), indent=2, sort_keys=True) + "\n"
    replace_file(receipt, lambda tmp: tmp.write_text(payload), crash_point=False)


def verify(receipt: str | Path) -> None:
    """Checks the remote output a receipt names against it (or, for a folder of receipts, every one inside);
    raises ReceiptError naming the first file that is missing, changed or not in the receipt."""
    receipt = Path(receipt)
    if receipt.is_dir():
        for inner in sorted(receipt.rglob("*.json")):
            verify(inner)
        return
    if not receipt.is_file():
        raise ReceiptError(f"{receipt}: no receipt, so the remote output it stands for was never recorded as "
                           f"complete; run the stage that writes it (dvc repro)")
    recorded = json.loads(receipt.read_text())
    uri, sizes = recorded["uri"], _files(recorded["uri"])
    folder = _is_folder(uri)
    for entry in recorded["files"]:
        name, where = entry["file"], _path(uri, entry["file"], folder)
        if name not in sizes:
            raise ReceiptError(f"{where} is missing: {receipt} records it ({entry['size']} bytes); rerun the stage "
                               f"that writes it (dvc repro -f -s ...) rather than reading a partial output")
        if sizes[name] != entry["size"] or digest(where) != entry["digest"]:
            raise ReceiptError(f"{where} changed since {receipt} recorded it (size {sizes[name]}, recorded "
                               f"{entry['size']}; digest recorded {entry['digest']}); something other than its "
                               f"stage wrote it: rerun that stage")
    unexpected = sorted(set(sizes) - {e["file"] for e in recorded["files"]})
    if unexpected:
        raise ReceiptError(f"{_path(uri, unexpected[0], folder)} is not in {receipt}: the output holds files its "
                           f"stage did not write; rerun that stage")
