"""Where a model runs: the `device` setting of every model-running stage (generate, evaluate, each
judge model, curate.semantic_dedup).

`auto` is CUDA when the process that loads the model sees a GPU (on Dataflow: the worker's), else
CPU; `cpu`, `cuda` and `cuda:N` are taken as written. The form is checked when params.yaml is read
(`require_device`); that the GPU exists, when the stage starts (`check_available`) and again where
the model loads (`resolve`), so a missing GPU is reported with its params key before any work.
"""

from __future__ import annotations

import re

from transforms.settings import ConfigError, require

AUTO = "auto"
_FORM = re.compile(r"auto|cpu|cuda(:\d+)?")


def require_device(value: str, where: str) -> None:
    """Refuses a setting `{where}.device` that is not auto, cpu, cuda or cuda:N."""
    require(bool(_FORM.fullmatch(value)), f"{where}.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', not {value!r}")


def resolve(value: str, where: str) -> str:
    """The torch device the setting `{where}.device` names here ('cpu', 'cuda', 'cuda:1'); a GPU asked
    for but absent is a ConfigError naming the key."""
    import torch

    require_device(value, where)
    if value == AUTO:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if value.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"{where}.device is {value!r}, but this machine has no CUDA device that torch "
                              f"{torch.__version__} can use (CUDA build: {torch.version.cuda or 'none'}); "
                              f"set it to 'auto' or 'cpu'")
        index = int(value.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"{where}.device is {value!r}, but this machine has {torch.cuda.device_count()} CUDA "
                              f"device(s) (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return value


def check_available(value: str, where: str) -> None:
    """At a stage's start: fails, naming `{where}.device`, when it asks for a GPU this machine lacks."""
    resolve(value, where)
