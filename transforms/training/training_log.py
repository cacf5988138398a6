"""The fine-tuning log: every step's loss and learning rate, written with DVCLive.

dvc.yaml declares the log folder as the finetune stage's metrics and plots, so DVCLive's own git
and DVC-experiment side is not used; it would also fail in a repository with no commit yet.
"""

from __future__ import annotations

from pathlib import Path

from dvclive import Live


class TrainingLog(Live):
    def _init_dvc(self):
        pass


def training_log(folder: Path, resumed_step: int | None) -> TrainingLog:
    """A log in `folder`: fresh, or continuing one whose run was killed and resumes at `resumed_step`
    (the training step of its checkpoint); what the killed run logged after that step is dropped,
    since those steps are trained again."""
    # absolute: DVCLive may still write when the trainer is collected, after the stage left the folder
    log = TrainingLog(str(Path(folder).resolve()), resume=resumed_step is not None, save_dvc_exp=False, dvcyaml=None)
    if resumed_step is not None:
        for series in Path(log.plots_dir).rglob("*.tsv"):
            header, *rows = series.read_text().splitlines(keepends=True)
            series.write_text(header + "".join(r for r in rows if int(r.split("\t", 1)[0]) < resumed_step))
        log.step = resumed_step
    return log
