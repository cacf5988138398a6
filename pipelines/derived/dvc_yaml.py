"""dvc.yaml, written from the stage table: one DVC stage per declared stage (a `foreach` over `iterations` for
the per-iteration ones), its deps what it reads plus the code it runs (the import closure of its entry module,
pipelines/derived/imports.py), its params the sections it declares. A project folder's dvc.yaml is the same
loop with the code deps pointing back here and the folder's own inputs (prompt files, custom judges, labels)
as deps. `make docs` rewrites both; a test fails when a committed one is stale."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import yaml

from pipelines import REPO
from pipelines.derived.imports import PACKAGES, closure
from pipelines.run import remote_outputs
from pipelines.stage import BASE_ITERATION, Out, Stage, Where
from pipelines.stage_table import STAGES
from transforms.io import receipts
from transforms.io.layout import Layout

# The layout as dvc.yaml names it: in the project folder, with the params DVC interpolates.
# The paths under storage.root are marked (pipelines/run/remote_outputs.py).
TEMPLATE = remote_outputs.marked(Layout(root="", prompts_dir="${prompts.out_dir}", base_model_dir="${base_model.path}"))
PLAIN = Out("")  # an output with DVC's defaults: only the options that differ are written
HEADER = ("# Written from the stage table (pipelines/stage_table.py) by `make docs` (python -m pipelines.derived): "
          "edit the stages' declarations, not this file.\n")


def non_empty_modules(folder: Path) -> set[str]:
    return {p.relative_to(REPO).as_posix() for p in folder.rglob("*.py") if p.read_text().strip()}


def folded(files: set[str]) -> list[str]:
    """The files, with every folder whose modules are all among them named as the folder instead: a module
    added to that folder later is then a dep too."""
    out: list[str] = []

    def walk(folder: Path) -> None:
        rel = folder.relative_to(REPO).as_posix()
        inside = {f for f in files if f.startswith(rel + "/")}
        if not inside:
            return
        if inside >= non_empty_modules(folder):
            out.append(rel)
            return
        out.extend(sorted(f for f in inside if "/" not in f[len(rel) + 1:]))
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "__pycache__"):
            walk(sub)

    for package in PACKAGES:
        walk(REPO / package)
    return out


def code_deps(stage: Stage) -> list[str]:
    return folded(closure(stage.module))


class Paths:
    """The paths dvc.yaml names for a stage's reads and writes through the marked TEMPLATE: under a remote storage
    root the receipts of what lies there (transforms/io/receipts.py), else the paths themselves."""

    def __init__(self, remote: bool):
        self.remote = remote
        self.outputs = {rel for stage in STAGES for where in wheres(stage) for rel in remote_outputs.outputs(stage, where)}

    def read(self, path: str) -> str:
        rel = remote_outputs.under_root(path)
        if rel is None:
            return path
        return receipts.receipt_for(rel, self.outputs) if self.remote else rel

    def write(self, out: Out) -> Out:
        rel = remote_outputs.under_root(out.path)
        if rel is None:
            return out
        # persist: DVC's run cache would restore a receipt without the remote files it describes; it skips a stage
        # with persistent outputs
        return Out(receipts.receipt_path(rel), cache=False, persist=True) if self.remote else replace(out, path=rel)

    def touches_root(self, stage: Stage, where: Where) -> bool:
        return bool(remote_outputs.outputs(stage, where) or remote_outputs.inputs(stage, where))


def wheres(stage: Stage) -> list[Where]:
    """The template paths of each DVC stage a declared stage makes."""
    found = [Where(TEMPLATE, BASE_ITERATION, "base")] if stage.also_base else []
    return found + [Where(TEMPLATE, "${key}", "${item.generator}") if stage.each_iteration else Where(TEMPLATE)]


def outs(stage: Stage, where: Where, paths: Paths) -> dict[str, list]:
    found: dict[str, list] = {}
    for out in map(paths.write, stage.writes(where)):
        options = {key: getattr(out, key) for key in ("cache", "persist", "x") if getattr(out, key) != getattr(PLAIN, key)}
        found.setdefault(out.kind, []).append({out.path: options} if options else out.path)
    return found


def definition(stage: Stage, where: Where, cmd: str, own_inputs: list[str], code: list[str], paths: Paths) -> dict:
    deps = [*map(paths.read, stage.reads(where)), *code, *(f for f in own_inputs if f not in code)]
    params = [*stage.params, *(["storage"] if paths.remote and paths.touches_root(stage, where) else [])]
    return {"cmd": cmd, "deps": deps, **({"params": params} if params else {}), **outs(stage, where, paths)}


def stages(own_inputs: dict[str, list[str]], remote: bool, code_prefix: str = "") -> dict[str, dict]:
    """{DVC stage: its definition}; `remote`: data and models under a remote storage.root; `code_prefix` leads every
    code dep (a project folder's path back here)."""
    found: dict[str, dict] = {}
    paths = Paths(remote)
    for stage in STAGES:
        code = [code_prefix + dep for dep in code_deps(stage)]
        mine = own_inputs.get(stage.name, [])
        command = " ".join(filter(None, ("selfsift", stage.name, stage.dvc_args)))
        for where in wheres(stage):
            if where.iteration == BASE_ITERATION:
                found[f"{stage.dvc_stage}_base"] = definition(stage, where, f"{command} --iteration 0", mine, code, paths)
            elif stage.each_iteration:
                found[stage.dvc_stage] = {"foreach": "${iterations}", "do": definition(
                    stage, where, f"{command} --iteration ${{key}}", mine, code, paths)}
            else:
                found[stage.dvc_stage] = definition(stage, where, command, mine, code, paths)
    return found


def render(stages_: dict[str, dict], header: str = HEADER) -> str:
    plots = [plot for stage in STAGES for plot in stage.dvc_plots]
    return header + yaml.safe_dump({"stages": stages_, "plots": plots}, sort_keys=False, width=120)


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
            "curate": judge_files, "evaluate": judge_files}  # curate judges revisions


def project_params(folder: Path) -> dict:
    params_path = folder / "params.yaml"
    if not params_path.is_file():
        raise FileNotFoundError(f"{params_path}: a project folder needs its params.yaml (copy the repository's)")
    return yaml.safe_load(params_path.read_text()) or {}


def project_inputs(folder: Path, params: dict) -> dict[str, list[str]]:
    found = own_inputs(params)
    return {stage: [f for f in files if (folder / f).is_file()] for stage, files in found.items()}


def remote_root(params: dict) -> bool:
    return bool((params.get("storage") or {}).get("root"))


def repository_dvc_yaml() -> str:
    params = project_params(REPO)
    return render(stages(project_inputs(REPO, params), remote_root(params)))


def project_dvc_yaml(folder: Path) -> str:
    folder = folder.resolve()
    params = project_params(folder)
    back = os.path.relpath(REPO, folder)
    header = (f"# Written from the stage table (pipelines/stage_table.py) by `python -m pipelines.derived.project "
              f"{os.path.relpath(folder, REPO)}`: rerun it rather than editing this file.\n")
    return render(stages(project_inputs(folder, params), remote_root(params), code_prefix=f"{back}/"), header)
