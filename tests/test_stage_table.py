"""A stage is declared once (its module's STAGE, one line in pipelines/stage_table.py), and the CLI, dvc.yaml
and the stage-time links follow from the declaration."""

import yaml

from pipelines import REPO, cli, stage_table
from pipelines.config import load
from pipelines.derived import dvc_yaml
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
    for module in (stage_table, dvc_yaml, cli):
        monkeypatch.setattr(module, "STAGES", stages, raising=False)
    monkeypatch.setattr(stage_table, "LOOP_ORDER", tuple(s.name for s in stages))
    monkeypatch.setattr(cli, "BY_NAME", {s.name: s for s in (*stages, *cli.COMMANDS)})


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

