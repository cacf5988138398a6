"""The loop's stages in the order they run, each declared once as `STAGE` in its entry module
(pipelines/stage.py). Adding a stage: its module, and one line below."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from pipelines import REPO
from pipelines.stage import BASE_ITERATION, Stage, Where
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
from transforms.io.layout import BASE, Layout

if TYPE_CHECKING:
    from pipelines.config import IterationConfig


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


def runs(layout: Layout, iterations: dict[str, IterationConfig]) -> list[tuple[Stage, Where]]:
    """Every run of a stage that the iterations make, with its paths: the stages that run once, the base model's
    evaluation, then each iteration's."""
    found = [(stage, Where(layout)) for stage in STAGES if not stage.each_iteration]
    found += [(stage, Where(layout, BASE_ITERATION, BASE)) for stage in STAGES if stage.also_base]
    found += [(stage, Where(layout, name, it.generator)) for name, it in iterations.items()
              for stage in STAGES if stage.each_iteration]
    return found
