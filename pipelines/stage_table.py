"""The loop's stages in the order they run, each declared once as `STAGE` in its entry module
(pipelines/stage.py). Adding a stage: its module, and one line below."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import ModuleType

from pipelines import REPO
from pipelines.stage import Stage
from pipelines.stages import (
    curate,
    evaluate,
    finetune,
    generate,
    judge,
    prepare_model,
    prompts,
    publish,
    report,
    validate,
)


def declared(module: ModuleType) -> Stage:
    """The module's STAGE, knowing its entry module's file."""
    assert module.__file__ is not None, f"{module.__name__} is a module without a file"
    return dataclasses.replace(module.STAGE, module=Path(module.__file__).resolve().relative_to(REPO).as_posix())


STAGES: tuple[Stage, ...] = tuple(declared(module) for module in (
    prepare_model,
    prompts,
    generate,
    judge,
    curate,
    validate,
    finetune,
    evaluate,
    publish,
    report,
))
BY_NAME = {stage.name: stage for stage in STAGES}
LOOP_ORDER = tuple(stage.name for stage in STAGES)
