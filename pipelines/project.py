"""A project folder of your own: `python -m pipelines.project DIR` writes DIR/dvc.yaml.

It is this repository's loop (dvc.yaml) with the code deps pointing back here, plus DIR's own inputs as
deps: the prompt files its params.yaml names and the modules of its custom judges. `dvc repro` in DIR
then runs the loop on DIR's params.yaml, prompt files and judges, and every output (data/, models/,
metrics/, reports/) stays inside DIR. Rerun it after changing which files params.yaml names; a test
keeps the shipped example's copy current.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
CODE = ("pipelines", "transforms", "schemas")  # the top folders of the code the stages run
HEADER = "# Written by `python -m pipelines.project {folder}` from {source}: rerun it rather than editing this file.\n"


def own_inputs(params: dict) -> dict[str, list[str]]:
    """{stage: the project's files it reads}: prompt files for `prompts`, the labels file and custom judge
    modules for the stages that judge (files of the project folder only; installed packages are not the
    project's)."""
    judge = params.get("judge", {})
    prompt_files = [params.get("prompts", {}).get("source", "builtin")]
    prompt_files += [s["prompts"] for s in (params.get("evaluate", {}).get("sets") or {}).values()]
    judge_files = [c["function"].split(":")[0].replace(".", "/") + ".py" for c in judge.get("custom") or []]
    labels = [(judge.get("calibration") or {}).get("labels") or ""]
    return {"prompts": [p for p in prompt_files if p != "builtin"], "judge": judge_files + [f for f in labels if f],
            "revise": judge_files, "evaluate": judge_files, "evaluate_base": judge_files}


def project_dvc_yaml(folder: Path) -> str:
    folder = folder.resolve()
    params_path = folder / "params.yaml"
    if not params_path.is_file():
        raise FileNotFoundError(f"{params_path}: a project folder needs its params.yaml (copy the repository's)")
    back = os.path.relpath(REPO, folder)
    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    extra = own_inputs(yaml.safe_load(params_path.read_text()) or {})
    for name, stage in pipeline["stages"].items():
        target = stage.get("do", stage)
        deps = [f"{back}/{d}" if isinstance(d, str) and d.split("/")[0] in CODE else d for d in target.get("deps", [])]
        target["deps"] = deps + [f for f in extra.get(name, []) if (folder / f).is_file() and f not in deps]
    source = os.path.relpath(REPO / "dvc.yaml", folder)
    return HEADER.format(folder=os.path.relpath(folder, REPO), source=source) + yaml.safe_dump(
        pipeline, sort_keys=False, width=120)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m pipelines.project DIR   (DIR holds your params.yaml)", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    (folder / "dvc.yaml").write_text(project_dvc_yaml(folder))
    print(folder / "dvc.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
