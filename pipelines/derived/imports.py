"""The project modules a stage can run: the import closure of its entry module, read from the source."""

from __future__ import annotations

import ast
from pathlib import Path

from pipelines import REPO

PACKAGES = ("pipelines", "transforms", "schemas")
# Files every stage reaches but whose imports are not followed. pipelines/config.py: its imports give the config
# classes, whose values DVC tracks through params.yaml. pipelines/stage_table.py: it imports every stage, for their
# order and their links (stage times); what a stage runs is its own module's closure.
LEAVES = ("pipelines/config.py", "pipelines/stage_table.py")


def module_file(name: str) -> Path | None:
    if not name.startswith(tuple(f"{package}." for package in PACKAGES)) or not name.replace(".", "").replace("_", "").isalnum():
        return None
    path = REPO / Path(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """Modules the file imports, anywhere in it (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in PACKAGES}


def closure(entry: str) -> set[str]:
    """Project files (relative paths) the entry module reaches through imports, itself included."""
    seen: set[str] = set()
    todo = [REPO / entry]
    while todo:
        path = todo.pop()
        rel = path.relative_to(REPO).as_posix()
        if rel in seen:
            continue
        seen.add(rel)
        if rel in LEAVES:
            continue
        for name in imported_modules(path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # a package's __init__ runs too
                if (found := module_file(".".join(parts[:i]))) is not None:
                    todo.append(found)
    return seen
