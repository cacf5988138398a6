"""Long stages show done of total, rate and time left: a log line every so often when no terminal
is attached, and one when the total is reached; Beam steps count through a pass-through DoFn."""

import logging

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines import config as config_module
from pipelines.cli import main
from tests.stage_fixtures import chdir, write_params
from tests.tiny_repo import TINY
from transforms.io import progress
from transforms.io.progress import LOG_EVERY_SECONDS, Meter, ShowProgress, duration


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_lines_give_total_rate_and_time_left_at_most_every_interval(caplog):
    caplog.set_level(logging.INFO, logger="selfsift")
    clock = Clock()
    meter = Meter("judge@iter-001", total=120, unit="candidates", clock=clock, tty=False)
    clock.now += 10
    meter.advance(20)
    assert caplog.messages == []  # not yet an interval since the start
    clock.now += LOG_EVERY_SECONDS
    meter.advance(20)  # 40 in 40 s: 1 per second, 80 left
    assert caplog.messages == ["judge@iter-001: 40 of 120 candidates (33 %), 1.00 candidates/s, 0m40s elapsed, "
                               "1m20s left"]
    clock.now += 1
    meter.advance(1)
    assert len(caplog.messages) == 1
    clock.now += 1
    meter.advance(79)
    assert len(caplog.messages) == 2 and caplog.messages[-1].startswith("judge@iter-001: 120 of 120 candidates (100 %)")
    assert caplog.messages[-1].endswith("0m00s left")


def test_durations_read_as_hours_minutes_seconds():
    assert [duration(s) for s in (0, 59.6, 61, 3600 + 62)] == ["0m00s", "1m00s", "1m01s", "1h01m02s"]


def test_a_beam_step_counts_every_element_by_its_weight_and_passes_it_on(caplog):
    caplog.set_level(logging.INFO, logger="selfsift")
    progress.start_meter("evaluate@iter-001", 10, "answers")
    with TestPipeline() as p:
        out = (p | beam.Create([(1, "a"), (4, "b"), (5, "c")])
               | beam.ParDo(ShowProgress("evaluate@iter-001", 10, "answers", weight=lambda e: e[0])))
        assert_that(out, equal_to([(1, "a"), (4, "b"), (5, "c")]))
    assert any(m.startswith("evaluate@iter-001: 10 of 10 answers (100 %)") for m in caplog.messages)


def test_generate_judge_and_evaluate_report_their_totals(tmp_path, tiny_model_dir, caplog):
    caplog.set_level(logging.INFO, logger="selfsift")
    write_params(tmp_path, str(tiny_model_dir), iterations={"iter-001": {"generator": "base"}}, **TINY)
    with chdir(tmp_path):
        for argv in (["prepare-model"], ["prompts"], ["generate", "--iteration", "1"], ["judge", "--iteration", "1"],
                     ["evaluate", "--iteration", "0"]):
            assert main(argv) == 0
        judges = len(config_module.load("params.yaml").judge.enabled())
    sizes = TINY["prompts"]
    candidates = TINY["generate"]["candidates_per_prompt"] * sizes["train_size"]
    answers = sizes["eval_size"] + sizes["eval_ood_size"]
    assert any(m.startswith(f"generate@iter-001: {candidates} of {candidates} candidates (100 %)") for m in caplog.messages)
    judgments = judges * candidates
    assert any(m.startswith(f"judge@iter-001: {judgments} of {judgments} judgments (100 %)") for m in caplog.messages)
    assert any(m.startswith(f"evaluate@iter-000: {answers} of {answers} answers (100 %)") for m in caplog.messages)
