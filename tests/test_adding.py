"""What adding a stage or a parameter costs, counted in a copy of the repo: the files edited by hand, and the
files `make docs` (python -m pipelines.derived) then writes from them."""

import subprocess
import sys

import pytest
import yaml

from tests.tiny_repo import copy_repo

STAGE = '''"""Stage `dedup-report`: how many kept rows share a dedup cluster."""

from pipelines.stage import Out, Stage, iteration_of


def main(config, iteration):
    return {"iteration": iteration}


STAGE = Stage(
    "dedup-report", "count the kept rows per dedup cluster",
    lambda args, config, beam: main(config, iteration_of(args, config)),
    params=("curate.near_dedup",),
    reads=lambda where: [where.layout.shards(where.iteration)],
    writes=lambda where: [Out(f"reports/dedup/{where.iteration}.json", cache=False)],
    each_iteration=True)
'''
GENERATED = {"dvc.yaml", "params.yaml", "docs/params.md", "examples/json_extraction/dvc.yaml",
             "examples/json_extraction/params.yaml"}


def git(root, *args) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=root, check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    copy_repo(tmp_path)
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "as shipped")
    return tmp_path


def edit(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def make_docs(root) -> set[str]:
    """Runs `make docs`' command in the copy; returns every file that differs from the commit."""
    subprocess.run([sys.executable, "-m", "pipelines.derived"], cwd=root, check=True, capture_output=True)
    git(root, "add", "-A")
    return set(git(root, "diff", "--cached", "--name-only").split())


def test_adding_a_stage_is_its_module_and_one_line_of_the_table(repo):
    (repo / "pipelines/stages/dedup_report.py").write_text(STAGE)
    edit(repo / "pipelines/stage_table.py", "    curate,\n", "    curate,\n    dedup_report,\n")  # the import
    edit(repo / "pipelines/stage_table.py", "    report,\n))", "    report,\n    dedup_report,\n))")  # its place
    changed = make_docs(repo)
    assert changed - GENERATED == {"pipelines/stages/dedup_report.py", "pipelines/stage_table.py"}
    stage = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]["dedup-report"]["do"]
    assert stage["cmd"] == "selfsift dedup-report --iteration ${key}" and stage["params"] == ["curate.near_dedup"]
    assert "pipelines/stages/dedup_report.py" in stage["deps"]
    example = yaml.safe_load((repo / "examples/json_extraction/dvc.yaml").read_text())["stages"]["dedup-report"]
    assert "../../pipelines/stages/dedup_report.py" in example["do"]["deps"]


def test_adding_a_parameter_is_one_field(repo):
    edit(repo / "pipelines/config.py", "    top_k: int = 0  # 0 disables top-k\n",
         "    top_k: int = 0  # 0 disables top-k\n    min_p: float = 0.0  # drop tokens below this share of the top one\n")
    changed = make_docs(repo)
    assert changed - GENERATED == {"pipelines/config.py"}
    for params in ("params.yaml", "examples/json_extraction/params.yaml"):
        assert "\n  min_p: 0.0  # drop tokens below this share of the top one\n" in (repo / params).read_text()
    assert "| `min_p` | float | `0.0` | drop tokens below this share of the top one |" in (
        repo / "docs/params.md").read_text()
