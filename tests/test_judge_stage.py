"""judge then curate on hand-written candidates, with the tiny model as LLM judge and a tiny reward
model: every judge writes a judgment per candidate, unscorable ones end as counted rejections."""

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipelines import config as config_module
from pipelines.stages import curate, judge
from schemas.records import CANDIDATE
from tests.records import candidate
from tests.stage_fixtures import chdir, prompt, write_params, write_prompt_sets
from transforms.io import faults
from transforms.io.parquet_io import read_rows, shard_name

TRAIN = [prompt("t1", "Write about owls.", "train"), prompt("t2", "Write about bats.", "train")]


CANDIDATES = [
    candidate("c1", TRAIN[0], "Owls hunt at night and see well in the dark"),
    candidate("c2", TRAIN[0], "Owls have silent wings and sharp eyes"),
    candidate("c6", TRAIN[0], "Owls, owls, owls"),                 # fails the verifier: pairs with c1
    candidate("c3", TRAIN[1], ""),                                  # empty
    candidate("c4", TRAIN[1], "bats " + "echolocate and " * 60),    # over the judges' input limit
    candidate("c5", TRAIN[1], "Bats are mammals, and they fly"),    # a comma: fails the verifier
]


@pytest.fixture
def workdir(tmp_path, tiny_model_dir):
    from tests.test_scoring_models import build_tiny_reward_model

    shutil.copytree(tiny_model_dir, tmp_path / "models/base")
    build_tiny_reward_model(tmp_path / "models/reward")
    model_judge = {"enabled": True, "max_input_tokens": 160, "dtype": "float32"}
    write_params(tmp_path, "unused",
                 judge={"num_shards": 2, "heuristics": {"min_words": 1},
                        "llm_judge": {**model_judge, "model": "models/base"},
                        "reward_model": {**model_judge, "model": "models/reward"}},
                 curate={"num_shards": 1})
    write_prompt_sets(tmp_path, TRAIN, [prompt("e1", "Write about frogs.", "eval")],
                      [prompt("o1", "Write about caves.", "eval_ood")])
    out = tmp_path / "data/candidates/iter-001"
    out.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(CANDIDATES, schema=CANDIDATE), out / shard_name(0, 1))
    return tmp_path


def test_judge_then_curate_accounts_for_every_candidate(workdir):
    config = config_module.load(workdir / "params.yaml")
    with chdir(workdir):
        judged = judge.main(config, "iter-001", [])
        manifest = curate.main(config, "iter-001", [])
        judgments = read_rows("data/judgments/iter-001")
        rejected = {r["candidate_id"]: (r["reason"], r["reason_detail"]) for r in read_rows("data/rejected/iter-001")}
        report = json.loads(open("reports/judges/iter-001.json").read())
    by_judge = {}
    for j in judgments:
        by_judge.setdefault(j["judge"], set()).add(j["candidate_id"])
    assert {"ifeval_verifier", "llm_judge", "reward_model"} <= set(by_judge) == set(judged["judges"])
    assert all(ids == {c["candidate_id"] for c in CANDIDATES} for ids in by_judge.values())
    assert rejected["c3"][0] == "empty"
    assert rejected["c4"][0] == "judge_error" and "input too long" in rejected["c4"][1]
    assert rejected["c5"][0] == rejected["c6"][0] == "below_threshold"
    assert manifest["rows_out"] + sum(manifest["rejected"].values()) == len(CANDIDATES)
    assert manifest["rows_out"] == 2 and manifest["pairs"] == 1
    assert manifest["kept_per_origin"] == {"sampled": 2} and manifest["funnel_per_origin"]["sampled"] == manifest["funnel"]
    assert set(report["judges"]) == {"llm_judge", "reward_model"}
    assert report["judges"]["llm_judge"]["excluded_unscored"] == 2  # c3 (empty) and c4 (too long)


def judged_by(judgments, judge):
    return {j["candidate_id"] for j in judgments if j["judge"] == judge}


def sampled_run(root, num_shards: int) -> tuple[list[dict], dict, dict, dict]:
    """(judgments, judge manifest, curate manifest, calibration report) with llm_judge on a sample of 2."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["judge"]["num_shards"] = num_shards
    params["judge"]["llm_judge"]["calibration_sample"] = 2
    params["judge"]["reward_model"]["calibration_sample"] = 0
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    config = config_module.load(root / "params.yaml")
    with chdir(root):
        judged = judge.main(config, "iter-001", [])
        curated = curate.main(config, "iter-001", [])
        return read_rows("data/judgments/iter-001"), judged, curated, json.loads(open("reports/judges/iter-001.json").read())


def test_a_judge_of_weight_0_scores_its_stratified_calibration_sample_only(workdir, tmp_path_factory):
    other = tmp_path_factory.mktemp("one_shard")
    shutil.copytree(workdir, other, dirs_exist_ok=True)
    judgments, judged, curated, report = sampled_run(workdir, num_shards=2)
    verifier = {j["candidate_id"]: j["passed"] for j in judgments if j["judge"] == "ifeval_verifier"}
    sampled = judged_by(judgments, "llm_judge")
    assert sorted(verifier[c] for c in sampled) == [False, True]  # one of each verdict
    assert judged_by(sampled_run(other, num_shards=1)[0], "llm_judge") == sampled  # whatever the shards
    assert judged_by(judgments, "reward_model") == {c["candidate_id"] for c in CANDIDATES}
    assert judged["calibration_samples"] == {"llm_judge": 2}
    sample = report["judges"]["llm_judge"]["sample"]
    assert (sample["size"], sample["scored"], sample["of_candidates"]) == (2, 2, len(CANDIDATES))
    assert (sample["verifier_passed"], sample["verifier_failed"]) == (1, 1)
    assert "sample" not in report["judges"]["reward_model"]
    assert curated["rows_out"] + sum(curated["rejected"].values()) == len(CANDIDATES)  # unsampled rows still count


def test_a_deciding_judge_scores_every_candidate_whatever_its_calibration_sample(workdir):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["judge"]["llm_judge"]["calibration_sample"] = 2
    params["curate"]["weights"] = {"ifeval_verifier": 1.0, "llm_judge": 1.0}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    with chdir(workdir):
        judged = judge.main(config_module.load("params.yaml"), "iter-001", [])
        judgments = read_rows("data/judgments/iter-001")
    assert judged_by(judgments, "llm_judge") == {c["candidate_id"] for c in CANDIDATES}
    assert "llm_judge" not in judged["calibration_samples"]


class Killed(Exception):
    """Stands in for SIGKILL at a kill point (the real one is in tests/test_fault_injection.py)."""


def kill_at(monkeypatch, point: str, nth: int) -> None:
    hits = []

    def reached(name):
        hits.append(name)
        if name == point and hits.count(point) == nth:
            raise Killed(point)

    monkeypatch.setattr(faults, "reached", reached)


def judged_files(root) -> dict[str, bytes]:
    files = sorted((root / "data/judgments/iter-001").glob("part-*")) + [root / "reports/judges/iter-001.json"]
    return {f.name: f.read_bytes() for f in files}


def test_a_killed_judge_reuses_its_completed_shards_to_byte_identical_judgments(workdir, tmp_path_factory,
                                                                               monkeypatch, caplog):
    reference = tmp_path_factory.mktemp("uninterrupted")
    shutil.copytree(workdir, reference, dirs_exist_ok=True)
    with chdir(reference):
        judge.main(config_module.load("params.yaml"), "iter-001", [])

    config = config_module.load(workdir / "params.yaml")
    kill_at(monkeypatch, "mid_write", 2)  # shard 1 of 2 is written and recorded, shard 2 is being written
    with chdir(workdir), pytest.raises(Exception, match="mid_write"):
        judge.main(config, "iter-001", [])
    monkeypatch.undo()
    assert not (workdir / "data/judgments/iter-001/manifest.json").exists()
    caplog.set_level("INFO", logger="selfsift")
    caplog.clear()  # only the resumed run's lines (an earlier test may have left the logger at INFO)
    with chdir(workdir):
        judge.main(config, "iter-001", [])
    assert "judge@iter-001: resuming; 1 of 2 shards" in caplog.text
    assert "shard(s) [0] of 2 done" not in caplog.text and "shard(s) [1] of 2 done" in caplog.text
    assert judged_files(workdir) == judged_files(reference)
    assert not (workdir / ".selfsift/runs/judge@iter-001.progress.json").exists()


def write_candidates(root, rows) -> None:
    pq.write_table(pa.Table.from_pylist(rows, schema=CANDIDATE), root / "data/candidates/iter-001" / shard_name(0, 1))


def test_judge_reuses_no_shard_judged_from_other_candidates(workdir, tmp_path_factory, monkeypatch, caplog):
    changed = [{**c, "text": f"{c['text']} again"} for c in CANDIDATES]
    reference = tmp_path_factory.mktemp("changed")
    shutil.copytree(workdir, reference, dirs_exist_ok=True)
    write_candidates(reference, changed)
    with chdir(reference):
        judge.main(config_module.load("params.yaml"), "iter-001", [])

    config = config_module.load(workdir / "params.yaml")
    kill_at(monkeypatch, "mid_write", 2)
    with chdir(workdir), pytest.raises(Exception, match="mid_write"):
        judge.main(config, "iter-001", [])
    monkeypatch.undo()
    write_candidates(workdir, changed)
    caplog.set_level("INFO", logger="selfsift")
    with chdir(workdir):
        judge.main(config, "iter-001", [])
    assert "inputs changed since the interrupted run; its shards are not reused" in caplog.text
    assert "resuming" not in caplog.text
    assert judged_files(workdir) == judged_files(reference)
