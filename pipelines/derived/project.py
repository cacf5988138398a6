"""A project folder of your own: `python -m pipelines.derived.project DIR` writes DIR/dvc.yaml.

It is this repository's loop (pipelines/stage_table.py) with the code deps pointing back here, plus DIR's own
inputs as deps: the prompt files its params.yaml names and the modules of its custom judges. `dvc repro` in
DIR then runs the loop on DIR's params.yaml, prompt files and judges, and every output (data/, models/,
metrics/, reports/) stays inside DIR. Rerun it after changing which files params.yaml names; a test
keeps the shipped example's copy current.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pipelines.derived.dvc_yaml import project_dvc_yaml


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m pipelines.derived.project DIR   (DIR holds your params.yaml)", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    (folder / "dvc.yaml").write_text(project_dvc_yaml(folder))
    print(folder / "dvc.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
