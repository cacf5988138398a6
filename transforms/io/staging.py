"""Writing a local file or folder all at once: build it beside its final name, then rename it into
place. (Files that may live under a remote storage.root go through parquet_io.write_atomically.)"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from transforms.io import faults


def replace_file(path: str | Path, write: Callable[[Path], None], crash_point: bool = True) -> None:
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
