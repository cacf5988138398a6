"""A stage run under a remote `storage.root`: its remote inputs are checked against their receipts before it starts,
and its remote outputs get fresh receipts when it finishes (transforms/io/receipts.py). Which paths lie under the
root comes from the stage table: the stage's reads and writes through a layout whose root is a marker. With no
remote root nothing happens, so local runs are unchanged."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from apache_beam.io.filesystems import FileSystems

from pipelines.stage import Stage, Where
from transforms.io import receipts
from transforms.io.layout import Layout
from transforms.settings import ConfigError

if TYPE_CHECKING:
    from pipelines.config import Config

ROOT = "@root"  # the root of a layout whose paths under storage.root are then recognisable


def marked(layout: Layout) -> Layout:
    return Layout(ROOT, layout.prompts_dir, layout.base_model_dir)


def under_root(path: str) -> str | None:
    """The path under the storage root of a path from a `marked` layout; None for a path in the project folder."""
    return path.removeprefix(ROOT + "/") if path.startswith(ROOT + "/") else None


def outputs(stage: Stage, where: Where) -> list[str]:
    return [rel for out in stage.writes(where) if (rel := under_root(out.path)) is not None]


def inputs(stage: Stage, where: Where) -> list[str]:
    return [rel for path in stage.reads(where) if (rel := under_root(path)) is not None]


def every_output(layout: Layout, config: Config) -> set[str]:
    """The remote outputs of every run the iterations make (paths under the root)."""
    from pipelines.stage_table import runs

    return {rel for stage, where in runs(marked(layout), config.iterations) for rel in outputs(stage, where)}


def check_dvc_yaml(config: Config) -> None:
    """Under `dvc repro` (which sets DVC_STAGE), refuses before any work a dvc.yaml written for the other kind of
    root: DVC would otherwise fail after the stage ran, on outputs that are not where it looks."""
    dvc_yaml = Path("dvc.yaml")
    if not os.environ.get("DVC_STAGE") or not dvc_yaml.is_file():
        return
    stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {})
    outs = [out for stage in stages.values() for out in stage.get("do", stage).get("outs", [])]
    tracks_receipts = any(str(next(iter(out)) if isinstance(out, dict) else out).startswith(
        f"{receipts.RECEIPTS.as_posix()}/") for out in outs)
    if bool(config.storage.root) == tracks_receipts:
        return
    what = (f"storage.root is {config.storage.root!r}, but dvc.yaml tracks local outputs" if config.storage.root
            else "storage.root is empty, but dvc.yaml tracks the receipts of a remote root")
    raise ConfigError(f"{what}: write dvc.yaml again with `make docs` (in a project folder: python -m "
                      f"pipelines.derived.project FOLDER), then run dvc repro")


@contextlib.contextmanager
def receipted(stage: Stage, where: Where, config: Config):
    """`where`: the run's paths through `marked(config.layout)`."""
    check_dvc_yaml(config)
    if not config.storage.root:
        yield
        return
    known = every_output(config.layout, config)
    for rel in inputs(stage, where):
        receipt = receipts.receipt_for(rel, known)
        # with neither a receipt nor the data, there is nothing to check: the stage says what it misses (or, for an
        # input it can do without, such as the base model's answers, goes on)
        if Path(receipt).exists() or FileSystems.exists(config.layout.at_root(rel)):
            receipts.verify(receipt)
    mine = outputs(stage, where)
    for rel in mine:  # a receipt vouches only for a finished run
        Path(receipts.receipt_path(rel)).unlink(missing_ok=True)
    yield
    for rel in mine:
        receipts.write(config.layout.at_root(rel), receipts.receipt_path(rel))
