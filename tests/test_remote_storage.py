"""With `storage.root` set to a remote URL, every stage reads and writes its data and models there,
through Beam's FileSystems, and nothing lands in the project folder but reports, metrics and the receipts of
what lies there. A filesystem with its own scheme (tests/fake_remote_fs.py) stands in for gs://."""

import json

from pipelines.cli import main
from tests.fake_remote_fs import PREFIX
from tests.stage_fixtures import chdir, write_params
from tests.tiny_repo import TINY
from transforms.io.parquet_io import read_table

STAGES = [["prepare-model"], ["prompts"], ["generate", "--iteration", "1"], ["judge", "--iteration", "1"],
          ["curate", "--iteration", "1"], ["validate", "--iteration", "1"],
          ["finetune", "--iteration", "1"], ["evaluate", "--iteration", "1"], ["publish", "--iteration", "1", "--dry-run"],
          ["report"]]


def test_every_stage_runs_against_a_remote_root(tmp_path, tiny_model_dir, capsys):
    project, store = tmp_path / "project", tmp_path / "bucket"
    project.mkdir()
    root = f"{PREFIX}{store}/selfsift"
    overrides = {**TINY, "judge": {**TINY["judge"], "llm_judge": {"enabled": True, "model": f"{root}/models/base"}}}
    write_params(project, str(tiny_model_dir), storage={"root": root}, iterations={"iter-001": {"generator": "base"}},
                 publish={"repo_id": "selfsift-test/remote"}, revise={"enabled": True}, **overrides)
    with chdir(project):
        for argv in STAGES:
            code = main(argv)
            assert code == 0, (argv, capsys.readouterr().err[-3000:])

    remote = store / "selfsift"
    assert read_table(f"{root}/data/candidates/iter-001").num_rows == 10 * 3
    for kind in ("candidates", "judgments", "shards"):
        assert json.loads((remote / "data" / kind / "iter-001" / "manifest.json").read_text())["shards"]
    for model in ("base", "iter-001"):
        summary = json.loads((remote / "models" / model / "selfsift_model.json").read_text())
        assert summary["weights_sha256"] and "model.safetensors" in summary["files"]
        assert {p.name for p in (remote / "models" / model).iterdir()} == {*summary["files"], "selfsift_model.json"}
    assert sorted(p.name for p in (remote / "models").iterdir()) == ["base", "iter-001"]  # no staging left
    curated = json.loads((remote / "data/shards/iter-001/manifest.json").read_text())
    assert curated["notes"]["judgments_without_candidate"] == {"count": 0, "example": None}
    revisions = json.loads((remote / "data/revisions/iter-001/manifest.json").read_text())  # curate revised, there
    assert curated["revision"]["rows"] == revisions["rows"] == read_table(f"{root}/data/revisions/iter-001").num_rows
    assert not list((remote / "data/shards/iter-001").glob(".tmp-*"))  # the notes moved into the manifest
    assert (remote / "data/evals/iter-001").is_dir() and (remote / "data/prompts/train.parquet").is_file()
    assert not (project / "data").exists() and not (project / "models").exists()
    receipts = {p.relative_to(project / "receipts").as_posix() for p in (project / "receipts").rglob("*.json")}
    assert receipts == {f"{out}.json" for out in ("models/base", "data/prompts", "models/iter-001", *(
        f"data/{kind}/iter-001" for kind in ("candidates", "judgments", "shards", "rejected", "pairs", "evals")))}
    assert json.loads((project / "reports/validation/iter-001.json").read_text())["success"]
    assert json.loads((project / "metrics/iter-001.json").read_text())["n_prompts"] == 6
    assert (project / "publish/data/iter-001").is_dir()
    record = json.loads((project / "reports/runs/loop-seed1234.json").read_text())  # read through the same layout
    iteration = record["iterations"][1]
    assert iteration["candidates"] == 10 * 3 and iteration["funnel"] and iteration["metrics"]["n_prompts"] == 6
    # each stage's time, tied to the remote files it consumed and produced (evaluate@iter-000 never ran here)
    assert set(record["stage_seconds"]) == {"prepare-model", "prompts", *(f"{stage}@iter-001" for stage in (
        "generate", "judge", "curate", "validate", "finetune", "evaluate"))}
