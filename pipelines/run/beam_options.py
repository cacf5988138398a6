"""The `beam:` params section: where the Beam stages run, stated once for all of them, with worker options per
stage. Each Beam stage turns it into Beam pipeline flags (`flags`); flags given on the command line after the
stage's own come later and win. The section is not a DVC param of any stage: where a stage runs does not change
what it writes (a GPU's samples differ from a CPU's, and the generate manifest records the device the workers used).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, fields

from transforms.settings import ConfigError, require

LOCAL_RUNNERS = ("direct", "prism", "interactive")  # runners whose worker is this machine, as Beam names them


@dataclass(frozen=True)
class BeamStageOptions:
    machine_type: str = ""  # worker machine type, e.g. n2-standard-8 or g2-standard-8 (L4 GPU); "" is the runner's default
    num_workers: int = 0  # workers to start with; 0 is the runner's default
    max_num_workers: int = 0  # autoscaling's ceiling; 0 is the runner's default
    # GPUs per worker, as Dataflow's worker_accelerator service option, e.g. "type:nvidia-l4;count:1;install-nvidia-driver"
    accelerator: str = ""
    options: dict[str, object] = field(default_factory=dict)  # any other Beam pipeline option for this stage, over beam.options

    def validate(self, where: str) -> None:
        require(self.num_workers >= 0 and self.max_num_workers >= 0,
                f"{where}: num_workers and max_num_workers must be >= 0 (0: the runner's default)")
        require(not self.accelerator or "type:" in self.accelerator,
                f"{where}.accelerator: {self.accelerator!r} must read like 'type:nvidia-l4;count:1;install-nvidia-driver'")


@dataclass(frozen=True)
class BeamConfig:
    runner: str = "DirectRunner"  # DirectRunner runs in this process; DataflowRunner on Google Cloud (docs/dataflow.md)
    project: str = ""  # the Google Cloud project of a Dataflow job
    region: str = ""  # its region, e.g. us-central1
    temp_location: str = ""  # a bucket folder for the runner's temporary files, e.g. gs://my-bucket/tmp
    staging_location: str = ""  # a bucket folder for the job's staged code; "" uses temp_location
    sdk_container_image: str = ""  # the worker image with this project installed (docs/dataflow.md, "Worker image")
    # any other Beam pipeline option, for every Beam stage, e.g. {direct_running_mode: multi_processing}
    options: dict[str, object] = field(default_factory=dict)
    # modules to import before a stage runs, and on every worker (Beam's beam_plugins): e.g. a filesystem of your
    # own, registered by its URL scheme the way Beam registers gs://
    plugins: list[str] = field(default_factory=list)
    generate: BeamStageOptions = field(default_factory=BeamStageOptions)
    judge: BeamStageOptions = field(default_factory=BeamStageOptions)
    curate: BeamStageOptions = field(default_factory=BeamStageOptions)
    evaluate: BeamStageOptions = field(default_factory=BeamStageOptions)
    validate: BeamStageOptions = field(default_factory=BeamStageOptions)

    def __post_init__(self) -> None:  # not validate(where): that name is the validate stage's block
        require(bool(self.runner), "beam.runner must name a Beam runner, e.g. DirectRunner or DataflowRunner")

    def stage(self, name: str) -> BeamStageOptions:
        return getattr(self, name)



def beam_stages() -> tuple[str, ...]:
    """The stages with options of their own in the section."""
    return tuple(f.name for f in fields(BeamConfig) if f.type == "BeamStageOptions")


def _flag(name: str, value: object) -> list[str]:
    if value is True:
        return [f"--{name}"]
    if value is False or value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [f for item in value for f in _flag(name, item)]
    return [f"--{name}={value}"]


def flags(beam: BeamConfig, stage: str) -> list[str]:
    """The Beam pipeline flags of `stage`, from the section: the runner and cloud settings, `options`, then the
    stage's worker options and its own `options` (later flags win). Settings left empty give no flag."""
    own = beam.stage(stage)
    named = {"runner": beam.runner, "project": beam.project, "region": beam.region,
             "temp_location": beam.temp_location, "staging_location": beam.staging_location,
             "sdk_container_image": beam.sdk_container_image,
             "beam_plugins": beam.plugins or None}
    workers = {"machine_type": own.machine_type, "num_workers": own.num_workers or None,
               "max_num_workers": own.max_num_workers or None,
               "dataflow_service_options": f"worker_accelerator={own.accelerator}" if own.accelerator else None}
    out: list[str] = []
    for name, value in [*named.items(), *beam.options.items(), *workers.items(), *own.options.items()]:
        out += _flag(name, value) if value != "" else []
    return out


def check_flags(beam: BeamConfig, unknown_flags) -> None:
    """Refuses, naming its key, an option of the section that no Beam PipelineOptions class declares;
    `unknown_flags(flags)` returns those of `flags` that Beam does not know."""
    for where, options in [("beam.options", beam.options),
                           *((f"beam.{name}.options", beam.stage(name).options) for name in beam_stages())]:
        for key, value in options.items():
            if unknown_flags(_flag(key, value) or [f"--{key}"]):
                raise ConfigError(f"{where}.{key}: not a Beam pipeline option (see Beam's PipelineOptions, e.g. "
                                  f"`python -m apache_beam.examples.wordcount --help`)")


def runs_locally(flags: list[str]) -> bool:
    """Whether Beam flags run the pipeline in this process's machine (Beam's default runner, or a local one)."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    runner = PipelineOptions(flags).view_as(StandardOptions).runner
    name = str(runner or "DirectRunner").rpartition(".")[2].lower().removesuffix("runner")
    return name in LOCAL_RUNNERS


def import_plugins(beam: BeamConfig) -> None:
    """Imports `beam.plugins` here as Beam's workers do (a module, or a class by its full path), so this process
    sees the same filesystems."""
    for plugin in beam.plugins:
        try:
            importlib.import_module(plugin)
        except ImportError:
            try:
                importlib.import_module(plugin.rpartition(".")[0] or plugin)
            except ImportError as exc:
                raise ConfigError(f"beam.plugins: {plugin!r} cannot be imported here: {exc}") from exc
