"""params.yaml, written from the config classes: every key, at the value the file sets or else at its default,
with the key's documentation from its class as a comment. A key set away from its default keeps the comment the
file gave it (a project's note on why), followed by the default. Adding a parameter is one field of a config
class; `make docs` then writes it here, and into each example's params.yaml, keeping every value already set."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
import typing
from pathlib import Path

import yaml

from pipelines.config import Config, load
from transforms.settings import field_default, field_docs

HEADER = """\
# Every knob of the loop, with its documentation. `dvc repro` reruns exactly the stages whose params or inputs
# changed. Written by `make docs` from the config classes (pipelines/config.py and the classes it names): change
# a value here; add or document a key in its class. docs/params.md is the reference.
"""


def _plain(value):
    """A value as YAML holds it: dataclasses as mappings."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def _flow(value) -> str:
    text = yaml.safe_dump(_plain(value), default_flow_style=True, width=10_000, sort_keys=False)
    return text.removesuffix("...\n").strip()  # a plain scalar's document ends with "..."


_DEFAULT_NOTE = re.compile(r"(\s*\(default: .*\))+$")  # what an earlier write appended
_LINE = re.compile(r"^(?P<pad> *)(?P<key>[\w.-]+):(?P<value>[^#]*?)\s*(?:#\s?(?P<comment>.*))?$")


def own_comments(text: str) -> dict[str, str]:
    """{dotted key: the comment on its line} of a params file, as written (lines of comments alone are not kept)."""
    found: dict[str, str] = {}
    path: list[str] = []
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        depth = len(match["pad"]) // 2
        path = path[:depth] + [match["key"]]
        if match["comment"]:
            found[".".join(path)] = match["comment"].strip()
    return found


def _value_lines(name: str, value, doc: str, pad: str) -> list[str]:
    comment = f"  # {doc}" if doc else ""
    value = _plain(value)
    if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        return [f"{pad}{name}:{comment}", *(f"{pad}  {key}: {_flow(v)}" for key, v in value.items())]
    return [f"{pad}{name}: {_flow(value)}{comment}"]


def _section(cls, values: dict, depth: int, comments: dict[str, str], prefix: str = "") -> list[str]:
    hints, docs, pad = typing.get_type_hints(cls), field_docs(cls), "  " * depth
    lines: list[str] = []
    for f in dataclasses.fields(cls):
        hint, doc = hints[f.name], docs.get(f.name, "")
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and typing.get_origin(hint) is None:
            written = hint.__doc__ or ""  # a dataclass without one gets its signature
            about = doc or ("" if written.startswith(f"{hint.__name__}(") else " ".join(written.split()))
            lines += [f"{pad}{f.name}:" + (f"  # {about}" if about else "")]
            lines += _section(hint, values.get(f.name) or {}, depth + 1, comments, f"{prefix}{f.name}.")
            if depth == 0:
                lines.append("")
        else:
            default = field_default(f)
            value = values.get(f.name, default)
            if f.name in values and default is not None and _plain(value) != _plain(default):
                note = _DEFAULT_NOTE.sub("", comments.get(prefix + f.name, "")) or doc
                doc = f"{note} (default: {_flow(default)})"
            entry = _value_lines(f.name, value, doc, pad)
            lines += entry + ([""] if depth == 0 and len(entry) > 1 else [])
    return lines


@contextlib.contextmanager
def in_project(folder: Path):
    """As `dvc repro` runs in a project folder: there, with its modules (custom judges) importable."""
    before = os.getcwd()
    sys.path.insert(0, str(folder))
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)
        sys.path.remove(str(folder))


def render(params_path: Path) -> str:
    """The params file rewritten: its values (validated first), every other key at its default."""
    params_path = params_path.resolve()
    with in_project(params_path.parent):
        load(params_path)  # unknown keys and bad values are refused, naming them
    text = params_path.read_text()
    lines = _section(Config, yaml.safe_load(text) or {}, 0, own_comments(text))
    return HEADER + "\n" + "\n".join(lines).rstrip("\n") + "\n"
