import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import config as config_module
from pipelines.stages import validate
from schemas.expectations import expectation_ids
from schemas.records import CANDIDATE, JUDGMENT, PAIR
from tests.records import shard_row
from tests.stage_fixtures import chdir, prompt, write_params, write_prompt_sets, write_shards
from transforms.io.parquet_io import shard_name

TRAIN = [prompt("t1", "Write about owls.", "train"), prompt("t2", "Write about bats.", "train")]
EVAL = [prompt("e1", "Write about frogs.", "eval")]
OOD = [prompt("o1", "Write about caves.", "eval_ood")]
CANDIDATE_KEYS = CANDIDATE.names


def write_table(root, kind, rows, schema):
    out = root / "data" / kind / "iter-001"
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out / shard_name(0, 1))


def write_iteration(root, shards, candidates=None, judgments=None, pairs=(), judges=("ifeval_verifier",)):
    """Candidates and judgments consistent with the train prompts (one candidate each), unless given."""
    if candidates is None:
        candidates = [{k: v for k, v in shard_row(f"c{i}", p, f"answer {i}").items() if k in CANDIDATE_KEYS}
                      for i, p in enumerate(TRAIN)]
    if judgments is None:
        judgments = [{"candidate_id": c["candidate_id"], "judge": "ifeval_verifier", "score": 1.0, "passed": True,
                      "detail": "{}"} for c in candidates]
    write_table(root, "candidates", candidates, CANDIDATE)
    write_table(root, "judgments", judgments, JUDGMENT)
    (root / "data/judgments/iter-001/manifest.json").write_text(json.dumps({"judges": list(judges)}))
    write_table(root, "pairs", list(pairs), PAIR)
    write_shards(root, "iter-001", shards)


@pytest.fixture
def workdir(tmp_path):
    write_params(tmp_path, "unused", generate={"candidates_per_prompt": 1})
    write_prompt_sets(tmp_path, TRAIN, EVAL, OOD)
    return tmp_path


def run(workdir, rows, **parts):
    write_iteration(workdir, rows, **parts)
    with chdir(workdir):
        return validate.main(config_module.load("params.yaml"), "iter-001")


def test_clean_iteration_passes_with_a_report_and_data_docs(workdir):
    report = run(workdir, [shard_row("c1", TRAIN[0], "owls hoot"), shard_row("c2", TRAIN[1], "bats fly")])
    assert report["success"]
    saved = json.loads((workdir / "reports/validation/iter-001.json").read_text())
    assert set(saved["suites"]) == {"prompts", "candidates", "judgments", "shards", "pairs"}
    assert saved["success"] and saved["failed"] == [] and all(s["failed"] == 0 for s in saved["summary"].values())
    docs = workdir / "reports/validation/iter-001"
    assert (docs / "index.html").is_file()
    pages = list((docs / "validations").rglob("*.html"))
    assert len(pages) == 5 and any("shards" in p.read_text() for p in pages)


@pytest.mark.parametrize("rows, expectation_id, column", [
    (lambda: [shard_row("c1", TRAIN[0], "same"), shard_row("c1", TRAIN[1], "other")],
     "shards.candidate_id_unique", "candidate_id"),
    (lambda: [shard_row("c1", TRAIN[0], "same text"), shard_row("c2", TRAIN[1], "Same  text")],
     "shards.text_unique", "text_sha256"),
    (lambda: [shard_row("c1", TRAIN[0], "weak", score=0.5)], "shards.min_score", "score"),
    (lambda: [shard_row("c1", EVAL[0], "leaked")], "shards.not_eval_prompt_id", "prompt_id"),
    (lambda: [shard_row("c1", TRAIN[0], "cut", finish_reason="length")], "shards.finished", "finish_reason"),
    (lambda: [], "shards.row_count", None),
])
def test_violation_fails_naming_expectation_column_and_rows(workdir, rows, expectation_id, column):
    with pytest.raises(validate.ValidationFailed) as err:
        run(workdir, rows())
    message = str(err.value)
    assert expectation_id in message
    if column:
        assert f"column {column!r}" in message
    saved = json.loads((workdir / "reports/validation/iter-001.json").read_text())
    assert not saved["success"] and expectation_id in saved["failed"]


def test_eval_text_under_another_id_is_caught(workdir):
    disguised = {**EVAL[0], "prompt_id": "t9"}
    with pytest.raises(validate.ValidationFailed, match="shards.not_eval_prompt_text.*prompt_text"):
        run(workdir, [shard_row("c1", disguised, "leaked again")])


def test_a_lost_candidate_and_a_missing_judgment_are_caught(workdir):
    one = [{k: v for k, v in shard_row("c0", TRAIN[0], "answer").items() if k in CANDIDATE_KEYS}]
    with pytest.raises(validate.ValidationFailed) as err:
        run(workdir, [shard_row("c0", TRAIN[0], "answer")], candidates=one, judgments=[])
    assert "candidates.row_count" in str(err.value) and "judgments.row_count" in str(err.value)


def test_an_adaptive_budget_expects_exactly_the_candidates_its_manifest_allocated(workdir):
    write_params(workdir, "unused", generate={"candidates_per_prompt": 2, "budget": "adaptive",
                                              "adaptive": {"first_round": 1, "rounds": 1}})
    rows = [shard_row("c0", TRAIN[0], "owls hoot"), shard_row("c1", TRAIN[1], "bats fly")]
    candidates = [{k: v for k, v in row.items() if k in CANDIDATE_KEYS} for row in rows]
    candidates.append({**candidates[1], "candidate_id": "c2", "sample_index": 1, "generation_round": 2})
    manifest = workdir / "data/candidates/iter-001/manifest.json"
    with pytest.raises(FileNotFoundError, match="manifest.json: no generate manifest with its rounds"):
        run(workdir, rows, candidates=candidates)
    allocated = [{"round": 1, "budget": 4, "prompts": 2, "candidates": 2}]
    manifest.write_text(json.dumps({"rounds": [*allocated, {"round": 2, "budget": 2, "prompts": 1, "candidates": 1}]}))
    assert run(workdir, rows, candidates=candidates)["success"]  # 3, not K x prompts = 4
    manifest.write_text(json.dumps({"rounds": [*allocated, {"round": 2, "budget": 2, "prompts": 2, "candidates": 2}]}))
    with pytest.raises(validate.ValidationFailed, match="candidates.row_count"):  # one allocated candidate is lost
        run(workdir, rows, candidates=candidates)


def test_a_judge_scoring_a_calibration_sample_is_counted_by_its_sample(workdir):
    write_params(workdir, "unused", generate={"candidates_per_prompt": 1},
                 judge={"llm_judge": {"enabled": True, "model": "models/base", "calibration_sample": 1}})
    rows = [shard_row("c0", TRAIN[0], "owls hoot"), shard_row("c1", TRAIN[1], "bats fly")]
    candidates = [{k: v for k, v in row.items() if k in CANDIDATE_KEYS} for row in rows]
    verdicts = [{"candidate_id": c["candidate_id"], "judge": judge, "score": 1.0, "passed": True, "detail": "{}"}
                for judge in ("ifeval_verifier", "llm_judge") for c in candidates]
    judges = ("ifeval_verifier", "llm_judge")
    assert run(workdir, rows, candidates=candidates, judgments=verdicts[:3], judges=judges)["success"]
    with pytest.raises(validate.ValidationFailed, match="judgments.row_count"):
        run(workdir, rows, candidates=candidates, judgments=verdicts, judges=judges)


def test_warn_severity_reports_without_stopping(workdir):
    write_params(workdir, "unused", generate={"candidates_per_prompt": 1},
                 validate={"severity": {"shards.text_unique": "warn"}})
    report = run(workdir, [shard_row("c1", TRAIN[0], "same text"), shard_row("c2", TRAIN[1], "Same  text")])
    assert report["success"] and report["warnings"] == ["shards.text_unique"]


def test_unknown_expectation_in_params_is_named(workdir):
    write_params(workdir, "unused", validate={"severity": {"shards.vibes": "fail"}})
    with pytest.raises(config_module.ConfigError, match="validate.severity: unknown expectation 'shards.vibes'"):
        config_module.load(workdir / "params.yaml")


def test_checks_hold_across_batches_and_shards(workdir, monkeypatch):
    """One row per batch: a duplicate id in two batches is still found (in Beam), and per-row failures of several
    batches add up."""
    monkeypatch.setattr(validate, "BATCH_ROWS", 1)
    rows = [shard_row("c1", TRAIN[0], "owls hoot"), shard_row("c1", TRAIN[1], "bats fly", score=0.5),
            shard_row("c3", TRAIN[1], "bats sleep", score=0.5)]
    with pytest.raises(validate.ValidationFailed):
        run(workdir, rows)
    saved = json.loads((workdir / "reports/validation/iter-001.json").read_text())
    by_id = {r["id"]: r for r in saved["suites"]["shards"]}
    assert by_id["shards.candidate_id_unique"]["unexpected_count"] == 2
    assert by_id["shards.candidate_id_unique"]["examples"] == ["c1"]
    assert by_id["shards.min_score"]["unexpected_count"] == 2 and not by_id["shards.min_score"]["success"]
    assert by_id["shards.text_unique"]["success"] and by_id["shards.row_count"]["observed"] == "3"
    assert list(by_id) == [i for i in expectation_ids() if i.startswith("shards.")]  # in suite order
    assert sorted(saved["failed"]) == ["shards.candidate_id_unique", "shards.min_score"]
