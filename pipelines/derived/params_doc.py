"""docs/params.md, the parameter reference, generated from the config classes: every key, its
default and its documentation. `python -m pipelines.derived.params_doc` rewrites it; a test keeps it current."""

from __future__ import annotations

import dataclasses
import json
import typing

from pipelines import REPO
from pipelines.config import Config
from transforms.settings import field_default, field_docs

OUT = REPO / "docs/params.md"
HEADER = """# Parameter reference

Generated from the config classes by `make docs` (`python -m pipelines.derived`); do not edit by hand.
`params.yaml` is written from the same classes, with the same comments, and sets every key below to its
default (a test keeps the two equal), except the required `seed`, `base_model.source` and `iterations`.
Unknown keys, wrong types and values out of range are refused before any work starts, naming the key.
"""


def _value(value) -> str:
    if value is None:
        return "(required)"
    return f"`{json.dumps(value, sort_keys=True) if isinstance(value, (dict, list, str)) else value}`".replace("|", "\\|")


def _type(hint) -> str:
    return getattr(hint, "__name__", str(hint)).replace("typing.", "").replace("|", "\\|")


def _section(cls, path: str, lines: list[str]) -> None:
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    nested = []
    rows = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]) and typing.get_origin(hints[f.name]) is None:
            nested.append((f, hints[f.name]))
            continue
        default = field_default(f)
        rows.append(f"| `{f.name}` | {_type(hints[f.name])} | {_value(default)} | {docs.get(f.name, '')} |")
    lines.append(f"\n## `{path}`\n" if path.count(".") == 0 else f"\n### `{path}`\n")
    if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):
        lines.append(" ".join(cls.__doc__.split()) + "\n")
    if rows:
        lines += ["| key | type | default | what it does |", "| --- | --- | --- | --- |", *rows]
    for f, hint in nested:
        if docs.get(f.name):
            lines.append(f"\n`{path}.{f.name}`: {docs[f.name]}")
        _section(hint, f"{path}.{f.name}", lines)


def render() -> str:
    lines = [HEADER]
    top = [f for f in dataclasses.fields(Config)]
    hints = typing.get_type_hints(Config)
    docs = field_docs(Config)
    lines += ["| key | what it does |", "| --- | --- |"]
    lines += [f"| `{f.name}` | {docs.get(f.name, '')} |" for f in top if not dataclasses.is_dataclass(hints[f.name])]
    for f in top:
        if dataclasses.is_dataclass(hints[f.name]):
            _section(hints[f.name], f.name, lines)
    return "\n".join(lines) + "\n"

