"""Every judge selfsift knows, in the order they run and are reported.

Adding one: a module that declares `SPECS = (JudgeSpec(...),)`, and its name on one line below."""

from __future__ import annotations

import importlib

from transforms.judges.contract import JudgeSpec
from transforms.judges.ifeval_verifier import NAME as REFERENCE


def specs(*modules: str) -> tuple[JudgeSpec, ...]:
    """The judges the given modules declare (their `SPECS`), in order."""
    return tuple(spec for module in modules for spec in importlib.import_module(module).SPECS)


JUDGES = specs(
    "transforms.judges.ifeval_verifier",
    "transforms.judges.heuristics",
    "transforms.judges.llm_judge",
    "transforms.judges.reward_model",
)

# REFERENCE: the judge the others are calibrated against; its `passed` is the calibration's label.
BY_NAME = {spec.name: spec for spec in JUDGES}
HEURISTICS = tuple(spec for spec in JUDGES if spec.kind == "heuristic")
if REFERENCE not in BY_NAME or len(BY_NAME) != len(JUDGES):
    raise ValueError(f"judge names must be unique and include the reference {REFERENCE!r}: {[s.name for s in JUDGES]}")
