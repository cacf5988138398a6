"""What every config class shares: the error it raises, its checks, and the comments that document it.

A config class is a frozen dataclass owned by the module that uses it. Each field carries its
default and, as a trailing comment (or comment lines just above it), its documentation, from
which params.yaml and `docs/params.md` are written. `validate(where)` names the offending key on bad values.
"""

from __future__ import annotations

import dataclasses
import inspect
import re


class ConfigError(ValueError):
    pass


def require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def require_dtype(dtype: str, where: str) -> None:
    require(dtype in ("float32", "bfloat16"), f"{where}.dtype must be 'float32' or 'bfloat16'")


def require_at_least_one(config, where: str, *names: str) -> None:
    for name in names:
        require(getattr(config, name) >= 1, f"{where}.{name} must be at least 1")


_FIELD = re.compile(r"^\s+(\w+)\s*:[^#]*?(?:#\s*(.*))?$")
_COMMENT = re.compile(r"^\s+#\s?(.*)$")


def field_docs(cls: type) -> dict[str, str]:
    """{field name: its comment} from the class's source (comment lines above a field, then its trailing one)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):  # no source (made at run time): its fields are documented in their own classes
            continue
        names = {f.name for f in dataclasses.fields(klass)}
        above: list[str] = []
        for line in source.splitlines()[1:]:
            if comment := _COMMENT.match(line):
                above.append(comment.group(1).strip())
                continue
            match = _FIELD.match(line)
            if match and match.group(1) in names:
                text = " ".join(above + ([match.group(2).strip()] if match.group(2) else []))
                if text or match.group(1) not in docs:
                    docs[match.group(1)] = text
            above = []
    return docs


def field_default(f: dataclasses.Field):
    """A field's default (a fresh one from its factory); None for a required field."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None
