"""dvc.yaml is what the stage table writes, and every module a stage can run is among its DVC deps, so an edit
to any of them reruns the stage. Models are known by their params, not as path deps: a model param may name a
Hub model (hf://...), which DVC cannot take as a dep."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

from pipelines import REPO
from pipelines.config import MODEL_PARAMS
from pipelines.derived import dvc_yaml
from pipelines.derived.imports import LEAVES, closure
from pipelines.stage_table import BY_NAME


def stages() -> dict[str, dict]:
    """{stage name: its definition}, foreach stages by their `do`."""
    defined = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in defined.items()}


def entry_module(stage: dict) -> str:
    """`selfsift <stage> ...` runs the entry module the stage table declares for it."""
    words = stage["cmd"].split()
    assert words[0] == "selfsift", stage["cmd"]
    return BY_NAME[words[1]].module


def test_dvc_yaml_is_what_the_stage_table_writes():
    assert (REPO / "dvc.yaml").read_text() == dvc_yaml.repository_dvc_yaml(), "dvc.yaml is stale: run `make docs`"


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


def test_a_missing_module_is_caught():
    curate = stages()["curate"]
    deps = [d for d in code_deps(curate) if not d.startswith("transforms/curation")]
    missing = uncovered(closure(entry_module(curate)), deps)
    assert "transforms/curation/near_dedup.py" in missing and "transforms/curation/chain.py" in missing


def test_a_folder_whose_every_module_a_stage_runs_is_named_as_the_folder():
    files = {f"schemas/{name}.py" for name in ("expectations", "reasons", "records")}
    assert dvc_yaml.folded(files) == ["schemas"]
    assert dvc_yaml.folded(files - {"schemas/expectations.py"}) == ["schemas/reasons.py", "schemas/records.py"]


def test_lazy_imports_inside_functions_count():
    files = closure("pipelines/stages/curate.py")
    assert "transforms/io/model_io.py" in files  # imported inside SentenceEmbeddingHandler.load_model
    assert Path(REPO / "transforms/curation/semantic_dedup.py").is_file()


def test_model_params_are_params_of_their_stage_and_never_path_deps():
    """The stage that reads a model param (named like its section) lists it under `params`: a pinned Hub
    id, a GGUF file's `base_model.sha256` or a local folder's path identifies the model."""
    defined = stages()
    for key in MODEL_PARAMS:
        section = key.split(".")[0]
        assert section in defined[section]["params"] or key in defined[section]["params"], key
        for name, stage in defined.items():
            assert not [d for d in stage["deps"] if f"${{{key}}}" in str(d)], f"{name} has a dep named by {key}"


def test_dvc_takes_hub_ids_in_every_model_param_and_keeps_the_stage_order(tmp_path):
    """Before, `dvc dag` failed on such params with 'Unsupported URL type hf://'."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for i, key in enumerate(MODEL_PARAMS):
        *sections, name = key.split(".")
        section = params
        for part in sections:
            section = section[part]
        section[name] = f"hf://owner/model-{i}@{'0' * 40}"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    dvc = str(Path(sys.executable).parent / "dvc")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    subprocess.run([dvc, "init", "--no-scm", "--quiet"], cwd=tmp_path, env=env, check=True)
    dag = subprocess.run([dvc, "dag", "--dot", "judge@iter-001"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert dag.returncode == 0, dag.stderr
    assert '"base_model" -> "generate@iter-001"' in dag.stdout
    assert '"generate@iter-001" -> "judge@iter-001"' in dag.stdout
