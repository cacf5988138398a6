"""selfsift's entry points: the stages, their table, the CLI and the typed config."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # the repository: its code, docs, the shipped study and examples
