"""Every module a stage can run is among its DVC deps, so an edit to any of them reruns the stage."""

from pathlib import Path

import yaml

from tests.project_imports import LEAVES, REPO, closure


def stages() -> dict[str, dict]:
    """{stage name: its definition}, foreach stages by their `do`."""
    defined = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in defined.items()}


def entry_module(stage: dict) -> str:
    """`selfsift <stage> ...` runs pipelines/<stage>.py."""
    words = stage["cmd"].split()
    assert words[0] == "selfsift", stage["cmd"]
    return f"pipelines/{words[1].replace('-', '_')}.py"


def code_deps(stage: dict) -> list[str]:
    return [d for d in stage["deps"] if isinstance(d, str) and d.startswith(("pipelines", "transforms", "schemas"))]


def uncovered(files: set[str], deps: list[str]) -> list[str]:
    """Files no dep covers; empty package markers (`__init__.py`) run nothing and need no dep."""
    def covered(path: str) -> bool:
        return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)

    return sorted(path for path in files if not covered(path) and (REPO / path).read_text().strip())


def test_every_module_a_stage_runs_is_a_dep():
    for name, stage in stages().items():
        files = closure(entry_module(stage))
        assert not uncovered(files, code_deps(stage)), f"{name}: not in its dvc.yaml deps: {uncovered(files, code_deps(stage))}"


def test_every_stage_depends_on_its_config_and_deps_exist():
    for name, stage in stages().items():
        deps = code_deps(stage)
        assert set(LEAVES) <= set(deps), name
        assert all((REPO / d).exists() for d in deps), (name, [d for d in deps if not (REPO / d).exists()])


def test_a_missing_folder_is_caught():
    curate = stages()["curate"]
    deps = [d for d in code_deps(curate) if d != "transforms/curation"]
    missing = uncovered(closure(entry_module(curate)), deps)
    assert "transforms/curation/near_dedup.py" in missing and "transforms/curation/chain.py" in missing


def test_lazy_imports_inside_functions_count():
    files = closure("pipelines/curate.py")
    assert "transforms/io/model_io.py" in files  # imported inside SentenceEmbeddingHandler.load_model
    assert Path(REPO / "transforms/curation/semantic_dedup.py").is_file()
