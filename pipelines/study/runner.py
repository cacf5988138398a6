"""`selfsift study FILE`: a controlled study, each variant of the loop run with each seed, one after the
other, as DVC experiments (`dvc exp run -n <variant>-seed<seed> -S key=value ...`). Each run files its record
under reports/runs/ (the report stage), so the summary compares them. A run whose record is already there is
skipped, so a study interrupted (or spread over days) resumes where it stopped.

FILE (see study.yaml):
    seeds: [1234, 2]
    common: {judge.llm_judge.enabled: false}     # every variant's overrides
    variants:
      loop: {}
      revise: {revise.enabled: true}
      no-filter: {curate.control: no_filter, curate.control_rows: {same_as: loop}}

`{same_as: RUN}` as control_rows stands for the rows RUN kept in each iteration with the same seed (a
control keeps as many rows as the loop it controls), read from RUN's record: list RUN first.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipelines import REPO
from pipelines.config import ConfigError, iteration_name
from transforms.io.layout import Layout

SAME_AS = "same_as"
REPO_STUDY = REPO / "study.yaml"  # issue 15's study (docs/signal.md)


@dataclass(frozen=True)
class StudyRun:
    variant: str
    seed: int
    overrides: dict

    @property
    def name(self) -> str:
        return f"{self.variant}-seed{self.seed}"

    @property
    def record(self) -> Path:
        return Layout.run_record(self.variant, self.seed)


def load_study(path: str) -> list[StudyRun]:
    """The study's runs, seed by seed (every variant of the first seed first: a partial study compares)."""
    try:
        spec = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the study: {exc}") from None
    if not isinstance(spec, dict) or set(spec) - {"seeds", "common", "variants"} or not spec.get("variants"):
        raise ConfigError(f"{path}: a study has `seeds`, `variants` and optionally `common` (see pipelines/study/runner.py)")
    seeds, common, variants = spec.get("seeds") or [], spec.get("common") or {}, spec["variants"]
    if not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"{path}: seeds must be a list of integers, got {seeds!r}")
    for where, overrides in [("common", common), *((f"variants.{name}", o) for name, o in variants.items())]:
        if not isinstance(overrides, dict):
            raise ConfigError(f"{path}: {where} must map params keys to values, got {overrides!r}")
        if "seed" in overrides or "report.run" in overrides:
            raise ConfigError(f"{path}: {where}: seed and report.run are set by the study")
    return [StudyRun(name, seed, {**common, **overrides}) for seed in seeds for name, overrides in variants.items()]


def resolved(run: StudyRun, dry_run: bool = False) -> dict:
    """The run's overrides, with `{same_as: RUN}` replaced by the rows RUN kept per iteration with this seed
    (left as it is in a dry run before RUN has run)."""
    out = {}
    for key, value in run.overrides.items():
        if isinstance(value, dict) and set(value) == {SAME_AS}:
            record = Layout.run_record(value[SAME_AS], run.seed)
            if not record.is_file() and dry_run:
                out[key] = value
                continue
            if not record.is_file():
                raise ConfigError(f"{run.name}: {key} takes the rows {value[SAME_AS]} kept with seed {run.seed}, but "
                                  f"{record} does not exist yet; list {value[SAME_AS]} before {run.variant}")
            iterations = json.loads(record.read_text())["iterations"]
            value = {iteration_name(it["iteration"]): it["kept"] for it in iterations
                     if it["iteration"] and it.get("kept") is not None}
        out[key] = value
    return out


def override_value(value) -> str:
    """A value in the override grammar `dvc exp run -S` parses (Hydra's: unquoted dict keys)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {override_value(v)}" for key, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(override_value(v) for v in value) + "]"
    if isinstance(value, str):  # quoted, so that "2", "true" or a comma stay a string
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return json.dumps(value) if isinstance(value, bool) or value is None else str(value)


def command(run: StudyRun, dry_run: bool = False) -> list[str]:
    settings = {"seed": run.seed, "report.run": run.variant, **resolved(run, dry_run)}
    flags = []
    for key, value in settings.items():
        if isinstance(value, dict):  # remove, then add: an override would merge into the dict params.yaml has
            flags += ["-S", f"~{key}", "-S", f"+{key}={override_value(value)}"]
        else:
            flags += ["-S", f"{key}={override_value(value)}"]
    return ["dvc", "exp", "run", "-n", run.name, *flags]


COMMITTED = ("params.yaml", "dvc.lock")


def check_committed() -> None:
    """The study restores params.yaml and dvc.lock between runs, so it refuses to start over uncommitted edits."""
    changed = subprocess.run(["git", "status", "--porcelain", "--", *COMMITTED], capture_output=True, text=True,
                             check=True).stdout.strip()
    if changed:
        raise ConfigError(f"the study restores {' and '.join(COMMITTED)} between runs; commit or stash your edits "
                          f"first:\n{changed}")


def restore_workspace() -> None:
    """Each run starts from the committed params and lock: `dvc exp run` leaves its own in the workspace, staged."""
    subprocess.run(["git", "checkout", "HEAD", "--", *COMMITTED], check=True)


def dvc_executable() -> str:
    """`dvc` on PATH, else the one installed beside this interpreter (a virtualenv used without activating it)."""
    found = shutil.which("dvc") or shutil.which("dvc", path=str(Path(sys.executable).parent))
    if not found:
        raise ConfigError(f"a study runs `dvc exp run`, but there is no dvc on PATH or beside {sys.executable}")
    return found


def git_head() -> tuple[str, str]:
    """The branch checked out (empty when HEAD is detached) and its commit."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True).stdout.strip()
    return git("symbolic-ref", "-q", "HEAD"), git("rev-parse", "HEAD")


def check_head_unmoved(before: tuple[str, str], run: StudyRun) -> None:
    """`dvc exp run` detaches HEAD while it runs; a commit or checkout meanwhile ends with the experiment
    committed onto whatever is checked out. Stop the study there rather than run on from a moved HEAD."""
    after = git_head()
    if after != before:
        raise ConfigError(f"{run.name}: HEAD moved while the run ran (was {' at '.join(filter(None, before))}, now "
                          f"{' at '.join(filter(None, after)) or 'detached'}); do not commit or switch branches "
                          f"during a study. Check `git log` for an experiment commit before running on")


def main(path: str, dry_run: bool = False, only: list[str] | None = None) -> dict:
    runs = load_study(path)
    if only:
        unknown = sorted(set(only) - {run.variant for run in runs})
        if unknown:
            raise ConfigError(f"{path}: no variant named {', '.join(unknown)}")
        runs = [run for run in runs if run.variant in only]
    if not dry_run:
        check_committed()
    done, ran = [], []
    head = git_head()
    try:
        for run in runs:
            if run.record.is_file():
                done.append(run.name)
                continue
            if dry_run:
                ran.append(" ".join(command(run, dry_run=True)))
                continue
            restore_workspace()
            subprocess.run([dvc_executable(), *command(run)[1:]], check=True)
            check_head_unmoved(head, run)
            ran.append(run.name)
    finally:
        if not dry_run:
            restore_workspace()
    return {"already_recorded": done, "would_run" if dry_run else "ran": ran}
