"""What a stage declares, once, as `STAGE` in its entry module: its command, what it reads and writes (through
the layout), the params it reads, and whether it runs on Beam. `pipelines/stage_table.py` lists the stages;
the CLI, `dvc.yaml`, a project folder's `dvc.yaml` and the stage-time links are derived from them."""

from __future__ import annotations

import argparse
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from transforms.io.layout import BASE, Layout

if TYPE_CHECKING:
    from pipelines.config import Config

BASE_ITERATION = "iter-000"  # the base model's evaluation


@dataclass(frozen=True)
class Out:
    path: str
    kind: str = "outs"  # DVC's section: outs, metrics or plots
    cache: bool = True  # false: a small report kept in git, not in DVC's cache
    persist: bool = False  # kept when the stage reruns (resume, pipelines/run/resume.py)
    x: str = ""  # plots: the x axis


@dataclass(frozen=True)
class Where:
    """The paths of one run of a stage. In dvc.yaml `iteration` and `generator` are DVC's foreach variables."""

    layout: Layout
    iteration: str = ""  # "" for a stage that runs once
    generator: str = ""  # the model that generates this iteration: "base" or an earlier iteration

    @property
    def model(self) -> str:
        """The model this iteration trains (the base model at iteration 0)."""
        return self.layout.model(BASE if self.iteration == BASE_ITERATION else self.iteration)

    @property
    def generator_model(self) -> str:
        return self.layout.model(self.generator)

    @property
    def summary(self) -> str:
        return self.layout.model_summary(self.model)

    @staticmethod
    def every(path: str) -> str:
        """The folder of every iteration's `path` (data/shards of data/shards/iter-001)."""
        return posixpath.dirname(str(path))


Run = Callable[[argparse.Namespace, "Config", list[str]], Any]  # (arguments, config, Beam flags) -> what to print


def no_flags(parser: argparse.ArgumentParser) -> None:
    pass


@dataclass(frozen=True)
class Stage:
    name: str  # the subcommand (`selfsift NAME`), and the DVC stage unless `dvc_name` says otherwise
    help: str
    run: Run
    params: tuple[str, ...] = ()  # the params.yaml sections or keys it reads (DVC reruns it when they change)
    reads: Callable[[Where], list[str]] = lambda where: []
    writes: Callable[[Where], list[Out]] = lambda where: []
    # The files a run's wall time is tied to (pipelines/run/stage_times.py): the one it consumed (None: a source
    # outside the loop) and the one it produced; a stage that produces none is not timed.
    consumes: Callable[[Where], str | None] = lambda where: None
    produces: Callable[[Where], str] | None = None
    each_iteration: bool = False  # one run per iteration (`--iteration`)
    also_base: bool = False  # with each_iteration: one more run for the base model, iteration 0
    beam: bool = False  # takes Beam pipeline options
    flags: Callable[[argparse.ArgumentParser], None] = no_flags  # its own flags
    dvc_plots: tuple[dict, ...] = ()  # dvc.yaml's top-level plots of the files it writes (`dvc plots show`)
    dvc_name: str = ""
    dvc_args: str = ""  # arguments of the command in dvc.yaml
    module: str = ""  # its entry module's file; stage_table fills it in

    @property
    def dvc_stage(self) -> str:
        return self.dvc_name or self.name


def iteration_of(args: argparse.Namespace, config: Config) -> str:
    """The iteration a per-iteration stage was asked for, by name (iter-001)."""
    return config.iteration_name(args.iteration)


def where_of(stage: Stage, args: argparse.Namespace, config: Config, layout: Layout) -> Where:
    """The paths of the run of `stage` that `args` ask for, through `layout`."""
    if not stage.each_iteration:
        return Where(layout)
    from pipelines.config import iteration_name

    if stage.also_base and iteration_name(args.iteration) == BASE_ITERATION:
        return Where(layout, BASE_ITERATION, BASE)
    name = iteration_of(args, config)
    return Where(layout, name, config.iterations[name].generator)
