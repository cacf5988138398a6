"""The `beam:` params section (pipelines/run/beam_options.py): the Beam flags each stage runs with, stated once."""

import argparse
import dataclasses

import pytest

from pipelines import cli
from pipelines.config import ConfigError, load
from pipelines.run import beam_options
from pipelines.run.beam_options import BeamConfig, BeamStageOptions
from pipelines.stage_table import BY_NAME, STAGES
from tests.stage_fixtures import chdir, write_params

SECTION = BeamConfig(
    runner="DataflowRunner", project="p", region="us-central1", temp_location="gs://b/tmp",
    options={"experiments": ["use_runner_v2", "no_use_multiple_sdk_containers"], "save_main_session": True},
    generate=BeamStageOptions(machine_type="g2-standard-8", num_workers=4,
                              accelerator="type:nvidia-l4;count:1;install-nvidia-driver"),
    curate=BeamStageOptions(max_num_workers=8, options={"machine_type": "n2-highmem-8"}))


def test_each_stage_gets_the_common_options_then_its_own():
    assert beam_options.flags(SECTION, "generate") == [
        "--runner=DataflowRunner", "--project=p", "--region=us-central1", "--temp_location=gs://b/tmp",
        "--experiments=use_runner_v2", "--experiments=no_use_multiple_sdk_containers", "--save_main_session",
        "--machine_type=g2-standard-8", "--num_workers=4",
        "--dataflow_service_options=worker_accelerator=type:nvidia-l4;count:1;install-nvidia-driver"]
    curate = beam_options.flags(SECTION, "curate")
    assert curate[-2:] == ["--max_num_workers=8", "--machine_type=n2-highmem-8"]
    assert not any("accelerator" in flag for flag in curate)


def test_the_default_is_the_local_runner_and_nothing_else():
    assert beam_options.flags(BeamConfig(), "judge") == ["--runner=DirectRunner"]
    assert beam_options.runs_locally(beam_options.flags(BeamConfig(), "judge"))
    assert beam_options.runs_locally([]) and beam_options.runs_locally(["--runner=direct"])
    assert not beam_options.runs_locally(beam_options.flags(SECTION, "judge"))


def test_every_beam_stage_has_options_of_its_own():
    assert set(beam_options.beam_stages()) == {stage.name for stage in STAGES if stage.beam}


def test_an_option_beam_does_not_know_is_refused_naming_its_key():
    typo = dataclasses.replace(SECTION, judge=BeamStageOptions(options={"num_worker": 3}))
    with pytest.raises(ConfigError, match=r"beam\.judge\.options\.num_worker: not a Beam pipeline option"):
        beam_options.check_flags(typo, cli.unknown_beam_flags)
    beam_options.check_flags(SECTION, cli.unknown_beam_flags)


def test_a_plugin_that_cannot_be_imported_is_refused():
    beam_options.import_plugins(BeamConfig(plugins=["tests.fake_remote_fs.FakeRemoteFileSystem", "json"]))
    with pytest.raises(ConfigError, match=r"beam\.plugins: 'no_such_module\.Thing' cannot be imported"):
        beam_options.import_plugins(BeamConfig(plugins=["no_such_module.Thing"]))


def test_a_stage_runs_with_the_sections_flags_before_the_command_lines(tmp_path, tiny_model_dir):
    write_params(tmp_path, str(tiny_model_dir), beam={"options": {"direct_num_workers": 2},
                                                       "generate": {"options": {"direct_running_mode": "in_memory"}}})
    seen = dataclasses.replace(BY_NAME["generate"], run=lambda args, config, beam: beam)
    with chdir(tmp_path):
        config = load("params.yaml")
        flags = cli.run_stage(seen, argparse.Namespace(iteration="1"), config, ["--direct_running_mode=multi_processing"])
    assert flags == ["--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=in_memory",
                     "--direct_running_mode=multi_processing"]  # Beam takes the last: the command line wins
    from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

    assert PipelineOptions(flags).view_as(DirectOptions).direct_running_mode == "multi_processing"
