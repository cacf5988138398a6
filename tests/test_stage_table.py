"""A stage is declared once (its module's STAGE, one line in pipelines/stage_table.py), and the CLI, dvc.yaml
and the stage-time links follow from the declaration."""

import ast
import dataclasses

import yaml

from pipelines import REPO, cli, stage_table
from pipelines.config import Config, load
from pipelines.derived import dvc_yaml
from pipelines.derived.imports import LEAVES, closure
from pipelines.run import stage_times
from pipelines.stage import Out, Stage


def added_stage() -> Stage:
    """A stage a user might add: its entry module is an existing one, so its code deps are real."""
    return Stage("dedup-report", "count duplicates", lambda args, config, beam: "ran",
                 params=("curate.exact_dedup",),
                 reads=lambda where: [where.layout.shards(where.iteration)],
                 writes=lambda where: [Out(f"reports/dedup/{where.iteration}.json", cache=False)],
                 consumes=lambda where: where.layout.manifest(where.layout.shards(where.iteration)),
                 produces=lambda where: f"reports/dedup/{where.iteration}.json",
                 each_iteration=True, module="pipelines/stages/curate.py")


def with_stage(monkeypatch, stage: Stage) -> None:
    stages = (*stage_table.STAGES, stage)
    for module in (stage_table, dvc_yaml):
        monkeypatch.setattr(module, "STAGES", stages)
    monkeypatch.setattr(stage_table, "LOOP_ORDER", tuple(s.name for s in stages))


def test_a_declared_stage_reaches_dvc_yaml_the_cli_and_the_stage_times(monkeypatch):
    with_stage(monkeypatch, added_stage())
    defined = yaml.safe_load(dvc_yaml.repository_dvc_yaml())["stages"]["dedup-report"]
    assert defined["foreach"] == "${iterations}"
    stage = defined["do"]
    assert stage["cmd"] == "selfsift dedup-report --iteration ${key}"
    assert stage["params"] == ["curate.exact_dedup"]
    assert stage["deps"][0] == "data/shards/${key}"
    assert {"pipelines/stages/curate.py", "transforms/curation/near_dedup.py"} <= set(stage["deps"])  # its code
    assert stage["outs"] == [{"reports/dedup/${key}.json": {"cache": False}}]

    args, beam = cli.parse(["dedup-report", "--iteration", "2"])
    assert args.iteration == "2" and beam == []
    links = stage_times.links(load(REPO / "params.yaml"))
    assert links["dedup-report@iter-001"].consumes == "data/shards/iter-001/manifest.json"
    assert list(links)[-1] == "dedup-report@iter-002"  # after every stage of the last iteration


def test_every_stage_is_declared_by_its_own_entry_module_and_named_once():
    names = [stage.name for stage in stage_table.STAGES]
    assert len(set(names)) == len(names)
    for stage in stage_table.STAGES:
        assert stage.module.startswith("pipelines/stages/") and (REPO / stage.module).is_file(), stage.name
    assert stage_table.LOOP_ORDER[:2] == ("prepare-model", "prompts")



# What a stage may read from the config without listing it under params: where things are and what runs, not
# what the outputs hold (the storage root, the runner, the iterations' names and generators, the load policy).
NOT_PARAMS = {"layout", "iteration_name", "iterations", "generator_dir", "security", "storage", "beam"}


def config_sections_read(path) -> set[str]:
    """The params sections of `config.<section>...` expressions in a module (other objects named config, such as a
    model's, have other attributes)."""
    sections = {f.name for f in dataclasses.fields(Config)}
    found = set()
    for node in ast.walk(ast.parse((REPO / path).read_text())):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "config":
            found.add(node.attr)
    return found & sections


def undeclared_sections(stage) -> set[str]:
    files = [f for f in closure(stage.module) if f.startswith("pipelines/") and f not in LEAVES]
    read = set().union(*(config_sections_read(f) for f in files)) - NOT_PARAMS
    return {section for section in read if not any(p.split(".")[0] == section for p in stage.params)}


def test_every_params_section_a_stage_reads_is_among_its_params():
    missing = {stage.name: sorted(undeclared_sections(stage)) for stage in stage_table.STAGES}
    assert not {name: sections for name, sections in missing.items() if sections}, missing


def test_a_section_read_but_not_declared_is_caught():
    curate = stage_table.BY_NAME["curate"]
    assert undeclared_sections(dataclasses.replace(curate, params=("curate", "seed", "judge"))) == {
        "revise", "generate", "evaluate"}
