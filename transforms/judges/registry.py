"""Every judge selfsift knows, in the order they run and are reported.

Adding one: a module that declares `SPECS = (JudgeSpec(...),)`, imported and named on one line below."""

from __future__ import annotations

from transforms.judges import (
    heuristics,
    ifeval_verifier,
    llm_judge,
    reward_model,
)
from transforms.judges.contract import JudgeSpec
from transforms.judges.ifeval_verifier import NAME as REFERENCE

JUDGES: tuple[JudgeSpec, ...] = tuple(spec for module in (
    ifeval_verifier,
    heuristics,
    llm_judge,
    reward_model,
) for spec in module.SPECS)

# REFERENCE: the judge the others are calibrated against; its `passed` is the calibration's label.
BY_NAME = {spec.name: spec for spec in JUDGES}
HEURISTICS = tuple(spec for spec in JUDGES if spec.kind == "heuristic")
if REFERENCE not in BY_NAME or len(BY_NAME) != len(JUDGES):
    raise ValueError(f"judge names must be unique and include the reference {REFERENCE!r}: {[s.name for s in JUDGES]}")
