"""Writing a local file or folder all at once: build it beside its final name, then rename it into
place. A remote folder (gs://...) cannot be renamed as a whole: `replace_remote_folder` stages its
files beside it and moves them in with the file that vouches for them last. (Single files that may
live under a remote storage.root go through parquet_io.write_atomically.)"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from transforms.io import faults


def replace_file(path: str | Path, write: Callable[[Path], object], crash_point: bool = True) -> None:
    """`write(tmp)` fills a fixed temporary name beside `path`, which is then renamed over `path`: a
    killed process leaves the old file or the new one, never half of one, and no litter. With
    `crash_point`, fault-injection tests can kill the process in between (`<stage>:mid_write`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    write(tmp)
    if crash_point:
        faults.reached("mid_write")
    tmp.replace(path)


@contextlib.contextmanager
def staged_folder(out_dir: str | Path):
    """Yields an empty sibling folder of `out_dir`; a clean exit renames it to `out_dir` (replacing
    what was there), an error removes it. Folders left by a killed process are removed first."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        os.chmod(staging, 0o755)
        yield staging
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_remote_folder(remote: str, files: dict[str, Path], last: tuple[str, bytes]) -> None:
    """Makes the flat remote folder `remote` hold exactly `files` (name -> local file) and `last`
    (name, content), written after all the others.

    Everything is uploaded to a staging prefix beside the folder first, so the old folder stays whole
    for the long part. Then `last` goes, every old file goes, the staged files move in, and `last`
    moves in at the end: a reader that finds `last` finds the folder complete, with no stale files.
    A killed run leaves the folder without `last`; the next run starts its staging afresh. With a
    fault-injection kill point (`<stage>:mid_write`) before each move."""
    from apache_beam.io.filesystems import FileSystems

    remote = remote.rstrip("/")
    staging = staging_prefix(remote)
    last_name, payload = last
    _remove_remote_folder(staging)
    for file_name, source in sorted(files.items()):
        with open(source, "rb") as src, _create(FileSystems.join(staging, file_name)) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    with _create(FileSystems.join(staging, last_name)) as dst:
        dst.write(payload)
    _remove_remote_folder(remote, first=last_name)
    if not FileSystems.exists(remote):
        FileSystems.mkdirs(remote)  # filesystems with folders need it; object stores ignore it
    for file_name in [*sorted(files), last_name]:
        faults.reached("mid_write")
        FileSystems.rename([FileSystems.join(staging, file_name)], [FileSystems.join(remote, file_name)])
    _remove_remote_folder(staging)


def staging_prefix(remote: str) -> str:
    """Where `replace_remote_folder` stages a remote folder's files: beside it, hidden."""
    from apache_beam.io.filesystems import FileSystems

    parent, name = FileSystems.split(remote.rstrip("/"))
    return FileSystems.join(parent, f".{name}.staging")


def remote_files(folder: str) -> list[str]:
    """The paths of the files directly in a remote folder (none when there is no such folder)."""
    from apache_beam.io.filesystems import FileSystems

    found = FileSystems.match([FileSystems.join(folder, "*")])[0].metadata_list
    return sorted(m.path for m in found)


def _create(path: str):
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _remove_remote_folder(folder: str, first: str | None = None) -> None:
    """Deletes a remote folder's files (`first` before the others) and the folder itself where the
    filesystem has folders."""
    from apache_beam.io.filesystems import FileSystems

    if first is not None and FileSystems.exists(FileSystems.join(folder, first)):
        FileSystems.delete([FileSystems.join(folder, first)])
    paths = remote_files(folder)
    if paths:
        FileSystems.delete(paths)
    if FileSystems.exists(folder):
        FileSystems.delete([folder])
