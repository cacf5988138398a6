"""The fine-tuning log: DVCLive series that work in any repository and resume without repeated steps."""

import csv
import os
import subprocess

from tests.stage_fixtures import chdir
from transforms.training.training_log import training_log


def logged(folder, name="loss"):
    with open(folder / "plots" / "metrics" / f"{name}.tsv") as f:
        return [(int(row["step"]), float(row[name])) for row in csv.DictReader(f, delimiter="\t")]


def test_logs_in_a_repository_with_no_commit_yet(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    with chdir(tmp_path):
        log = training_log(tmp_path / "reports/training/iter-001", resumed_step=None)
        for loss in (3.0, 2.0):
            log.log_metric("loss", loss)
            log.next_step()
        log.end()
    assert logged(tmp_path / "reports/training/iter-001") == [(0, 3.0), (1, 2.0)]


def test_a_resumed_log_drops_what_the_killed_run_logged_after_the_checkpoint(tmp_path):
    folder = tmp_path / "log"
    with chdir(tmp_path):
        killed = training_log(folder, resumed_step=None)
        for step in range(6):  # steps 1..6 trained; the checkpoint was at step 4, the kill after step 6
            killed.log_metric("loss", 10.0 - step)
            killed.next_step()
        resumed = training_log(folder, resumed_step=4)
        for step in range(4, 6):  # steps 5 and 6 are trained again
            resumed.log_metric("loss", 20.0 - step)
            resumed.next_step()
        resumed.end()
    assert logged(folder) == [(0, 10.0), (1, 9.0), (2, 8.0), (3, 7.0), (4, 16.0), (5, 15.0)]


def test_a_fresh_log_clears_an_earlier_run(tmp_path):
    folder = tmp_path / "log"
    with chdir(tmp_path):
        first = training_log(folder, resumed_step=None)
        first.log_metric("loss", 1.0)
        first.next_step()
        second = training_log(folder, resumed_step=None)
        second.log_metric("loss", 5.0)
        second.next_step()
    assert logged(folder) == [(0, 5.0)]
    assert not os.path.exists(folder / "dvc.yaml")
