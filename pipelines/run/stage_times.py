"""Each stage's wall time, tied to the file it consumed and the file it produced.

A stage that finishes writes `.selfsift/runs/<stage>@<iteration>.time.json`: its seconds and the
sha256 of the two files `links` names for it. A run record counts a time only when the consumed
file is one the run trusts (its own base model, a file its chain of models reached, or what a stage
already counted produced) and both files are still the ones the stage saw. So a workspace that
holds another run's later files, or the times of stages this run never reached, lends the run
nothing, as with metrics (`report.reached_iterations`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from apache_beam.io.filesystems import FileSystems

from transforms.io.parquet_io import file_sha256
from transforms.io.staging import replace_file

if TYPE_CHECKING:
    from pipelines.config import Config


def pipeline_order(name: str) -> tuple[int, int]:
    """Sorts `stage@iteration` names as the loop runs them (records keep their keys sorted by name)."""
    from pipelines.stage_table import LOOP_ORDER  # the stage table imports every stage, and they import this

    stage, _, iteration = name.partition("@")
    number = int(iteration.removeprefix("iter-")) if iteration.startswith("iter-") else -1
    return number, LOOP_ORDER.index(stage) if stage in LOOP_ORDER else len(LOOP_ORDER)


@dataclass(frozen=True)
class Link:
    consumes: str | None  # None: the stage starts from a source outside the loop
    produces: str


def in_pipeline_order(seconds: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(seconds.items(), key=lambda item: pipeline_order(item[0]))


def stage_name(stage: str, iteration: str | None) -> str:
    return f"{stage}@{iteration}" if iteration else stage


def links(config: Config) -> dict[str, Link]:
    """{stage@iteration: what it consumes and produces} for every timed stage (the stage table's, each declaring
    both), in pipeline order."""
    from pipelines.stage_table import runs

    found = {stage_name(stage.name, where.iteration): Link(stage.consumes(where), stage.produces(where))
             for stage, where in runs(config.layout, config.iterations) if stage.produces is not None}
    return dict(sorted(found.items(), key=lambda item: pipeline_order(item[0])))


def current_sha256(path: str | None) -> str | None:
    return file_sha256(path) if path and FileSystems.exists(path) else None


def time_file(runs_dir, name: str):
    return runs_dir / f"{name}.time.json"


def record(runs_dir, name: str, seconds: float, consumed: str | None, link: Link | None) -> None:
    """`consumed`: the sha256 of `link.consumes` when the stage started."""
    entry = {"seconds": round(seconds, 1), "consumes": consumed,
             "produces": current_sha256(link.produces) if link else None}
    replace_file(time_file(runs_dir, name), lambda tmp: tmp.write_text(json.dumps(entry, indent=2) + "\n"),
                 crash_point=False)


def read_record(path) -> dict:
    """A small JSON record of `.selfsift/runs/`; {} when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def run_times(config: Config, runs_dir, trusted: set[str]) -> dict[str, float]:
    """{stage@iteration: seconds} for the stages whose output this run's chain holds.

    `trusted`: the files the run's chain reached (model summaries, manifests, metrics)."""
    trusted, shas, times = set(trusted), {}, {}

    def sha(path: str) -> str | None:
        if path not in shas:
            shas[path] = current_sha256(path)
        return shas[path]

    for name, link in links(config).items():
        entry = read_record(time_file(runs_dir, name))
        if not entry or entry.get("produces") is None or entry["produces"] != sha(link.produces):
            continue
        if link.consumes is None or (link.consumes in trusted and entry.get("consumes") == sha(link.consumes)):
            times[name] = entry["seconds"]
            trusted.add(link.produces)
    return times

