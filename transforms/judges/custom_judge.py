"""Judges of your own: a Python function from your code, declared in params as
`judge.custom: [{name, function: "package.module:callable"}]`.

The callable takes (prompt, response): `prompt` is the prompt record as a dict (`prompt_id`,
`messages`, `instruction_ids`, `kwargs` and your file's `metadata` object, e.g. a reference answer),
`response` the candidate's text. It returns `(score, passed, detail)`: a score in [0, 1], a bool, and
a JSON-serializable dict (or `(score, passed)`). A callable that raises or returns anything else gives
that candidate a `judge_error` judgment; the batch goes on.

Modules are imported from the environment or, failing that, from the working directory (the project
folder `dvc repro` runs in): name them so that no installed package shadows them. On Dataflow, ship
them with the job (docs/dataflow.md).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from typing import Callable

from schemas.records import Candidate, Prompt
from transforms.judges.contract import JudgeResult, JudgeSpec
from transforms.settings import ConfigError, require

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class CustomJudgeConfig:
    name: str  # the judge's name in judgments, curate.weights and reports (lowercase letters, digits, _)
    function: str  # "package.module:callable", importable from the environment or the project folder

    def validate(self, where: str) -> None:
        require(bool(NAME_PATTERN.match(self.name)), f"{where}.name: {self.name!r} must be lowercase letters, digits "
                                                     f"and '_', starting with a letter")
        load_function(self.function, f"{where}.function")


def load_function(reference: str, where: str) -> Callable:
    """The callable named "package.module:callable"; a ConfigError naming `where` when it cannot be had."""
    if not _FUNCTION.match(reference):
        raise ConfigError(f"{where}: {reference!r} must be written as package.module:callable")
    module_name, attribute = reference.split(":")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to fix, named here
        raise ConfigError(f"{where}: cannot import {module_name!r} ({type(exc).__name__}: {exc})") from exc
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ConfigError(f"{where}: {module_name} has no callable {attribute!r}")
    return function


def prompt_record(prompt: Prompt) -> dict:
    """The prompt as the callable sees it: the stored record, with `metadata` as a dict."""
    return {**prompt, "metadata": json.loads(prompt.get("metadata") or "{}")}


def result_of(returned) -> JudgeResult:
    """Checks what a custom callable returned; anything but (score in [0, 1], bool[, dict]) is an error."""
    if not isinstance(returned, tuple) or len(returned) not in (2, 3):
        return JudgeResult.failed(f"returned {type(returned).__name__}, expected (score, passed, detail)")
    score, passed, detail = (*returned, {}) if len(returned) == 2 else returned
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score) \
            or not 0 <= score <= 1:
        return JudgeResult.failed(f"returned score {score!r}, expected a number in [0, 1]")
    if not isinstance(passed, bool):
        return JudgeResult.failed(f"returned passed {passed!r}, expected True or False")
    if not isinstance(detail, dict):
        return JudgeResult.failed(f"returned detail {detail!r:.200}, expected a dict")
    try:
        json.dumps(detail)
    except (TypeError, ValueError):
        return JudgeResult.failed(f"returned a detail that is not JSON-serializable: {detail!r:.200}")
    return JudgeResult(float(score), passed, detail)


def custom_check(config: CustomJudgeConfig):
    function = load_function(config.function, f"judge.custom {config.name}.function")

    def check(candidate: Candidate, prompt: Prompt) -> JudgeResult:
        try:
            returned = function(prompt_record(prompt), candidate["text"])
        except Exception as exc:  # noqa: BLE001 - the user's code failing on one candidate is a judge_error
            return JudgeResult.failed(f"{config.function} raised {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
        return result_of(returned)

    return check


def custom_spec(config: CustomJudgeConfig) -> JudgeSpec:
    return JudgeSpec(config.name, "custom", lambda _settings: custom_check(config))
