"""The real `dvc repro`, two iterations, on a tiny model, in a temporary copy of the repo, with the
filter on: params.yaml's judge settings gate a task the model passes sometimes (tests/tiny_repo.py)."""

import json
import subprocess
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from schemas.records import SHARD_ROW
from tests.tiny_repo import COMMAS, REPETITIVE, REPO, SHORT, tiny_repo
from transforms.io.model_io import load_causal_lm
from transforms.io.parquet_io import list_shards, read_rows, read_table
from transforms.text_normalization import words

ITERATIONS = ("iter-001", "iter-002")
REASON_JUDGE = {"below_threshold": "ifeval_verifier", "truncated": "heuristic_truncation",
                "length_out_of_bounds": "heuristic_length", "repetitive": "heuristic_repetition"}
# What each of the task's failing answers is rejected for (tests/tiny_repo.py).
FAILS = {COMMAS: "below_threshold", REPETITIVE: "repetitive", SHORT: "length_out_of_bounds"}


@pytest.fixture(scope="module")
def repro(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("repo")
    env = tiny_repo(root, tiny_model_dir)
    result = subprocess.run(["dvc", "repro"], cwd=root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return root, env, result.stdout


def test_shards_read_back_with_the_schema(repro):
    root, _, _ = repro
    for it in ("iter-001", "iter-002"):
        paths = list_shards(str(root / "data/shards" / it))
        assert [Path(p).name for p in paths] == ["part-00000-of-00002.parquet", "part-00001-of-00002.parquet"]
        for p in paths:
            assert pq.read_schema(p).equals(SHARD_ROW, check_metadata=False)


def test_manifests_reconcile(repro):
    root, _, stdout = repro
    for it in ("iter-001", "iter-002"):
        manifest = json.loads((root / "data/shards" / it / "manifest.json").read_text())
        candidates = read_table(str(root / "data/candidates" / it)).num_rows
        assert candidates == 10 * 3 == manifest["rows_in"]
        assert manifest["rows_out"] + sum(manifest["rejected"].values()) == manifest["rows_in"]
        assert manifest["rows_out"] == sum(s["rows"] for s in manifest["shards"]) > 0
        rejected = read_table(str(root / "data/rejected" / it)).column("reason").to_pylist()
        assert len(rejected) == sum(manifest["rejected"].values())
        assert manifest["generator_model"] == ("models/base" if it == "iter-001" else "models/iter-001")
        assert len(manifest["git_revision"]) > 0 and len(manifest["params_hash"]) == 64
        steps = manifest["funnel"]
        assert steps[0]["in"] == manifest["rows_in"] and steps[-1]["out"] == manifest["rows_out"]
        pairs = read_table(str(root / "data/pairs" / it)).num_rows
        assert pairs == manifest["pairs"]
    assert "near dedup" in stdout and "preference pairs" in stdout  # curate prints its funnel


def test_judges_and_calibration_reports(repro):
    root, _, stdout = repro
    for it in ("iter-001", "iter-002"):
        judges = set(read_table(str(root / "data/judgments" / it)).column("judge").to_pylist())
        assert {"ifeval_verifier", "llm_judge", "heuristic_repetition", "heuristic_echo"} <= judges
        report = json.loads((root / "reports/judges" / f"{it}.json").read_text())
        stats = report["judges"]["llm_judge"]
        assert stats["candidates"] + stats["excluded_unscored"] == 10 * 3
        assert (root / "reports/judges" / f"{it}.png").read_bytes()[:4] == b"\x89PNG"
    assert "ROC AUC" in stdout  # judge prints its calibration table


def test_the_end_to_end_repo_gates_with_the_default_judge_settings(repro):
    root, _, _ = repro
    ours, default = (yaml.safe_load((folder / "params.yaml").read_text()) for folder in (root, REPO))
    assert {k: v for k, v in ours["judge"].items() if k != "num_shards"} == \
        {k: v for k, v in default["judge"].items() if k != "num_shards"}
    assert {k: ours["curate"][k] for k in ("combine", "weights", "control")} == \
        {k: default["curate"][k] for k in ("combine", "weights", "control")}


def test_the_filter_keeps_some_candidates_and_rejects_the_rest_by_reason(repro):
    root, _, _ = repro
    counts = Counter()
    for it in ITERATIONS:
        manifest = json.loads((root / "data/shards" / it / "manifest.json").read_text())
        by_reason = {reason: n for reason, n in manifest["rejected"].items() if n}
        rejected = read_rows(str(root / "data/rejected" / it))
        assert Counter(r["reason"] for r in rejected) == by_reason
        funnel = {step["step"]: step["rejected"] for step in manifest["funnel"]}
        assert funnel["heuristics"]["truncated"] == by_reason.get("truncated", 0)
        assert funnel["judge policy"]["below_threshold"] == by_reason.get("below_threshold", 0)
        for row in rejected:  # each rejection is the verdict of the judge that gives its reason
            verdicts = {j["judge"]: j["passed"] for j in row["judgments"]}
            if row["reason"] in REASON_JUDGE:
                assert not verdicts[REASON_JUDGE[row["reason"]]], row
            else:  # a duplicate of a kept answer, or one over the prompt's cap: it passed every judge
                assert row["reason"] in ("duplicate", "over_prompt_cap") and all(verdicts.values()), row
            if row["text"] in FAILS:
                assert row["reason"] == FAILS[row["text"]], row["text"]
            if row["finish_reason"] == "length":
                assert row["reason"] == "truncated"
        kept = read_rows(str(root / "data/shards" / it))
        assert len(kept) == manifest["rows_out"] >= 2
        for row in kept:  # only answers that passed the deciding judge and every heuristic
            verdicts = {j["judge"]: j for j in row["judgments"]}
            assert verdicts["ifeval_verifier"]["passed"] and verdicts["ifeval_verifier"]["score"] == 1.0
            assert all(j["passed"] for name, j in verdicts.items() if name.startswith("heuristic_")), row["text"]
            assert "," not in row["text"] and len(words(row["text"])) >= 15 and row["finish_reason"] == "stop"
        counts.update(by_reason)
        counts["kept"] += len(kept)
    for reason in ("below_threshold", "truncated", "length_out_of_bounds", "repetitive", "duplicate"):
        assert counts[reason] > 0, counts
    print(f"kept and rejected over both iterations: {dict(counts)}")


def test_validation_passed(repro):
    root, _, _ = repro
    for it in ("iter-001", "iter-002"):
        assert json.loads((root / "reports/validation" / f"{it}.json").read_text())["success"]


def test_metrics_for_every_iteration(repro):
    root, env, _ = repro
    keys = {"prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc", "inst_level_loose_acc"}
    for n in (0, 1, 2):
        metrics = json.loads((root / f"metrics/iter-{n:03d}.json").read_text())
        assert keys | {f"ood_{k}" for k in keys} | {"n_prompts", "ood_n_prompts"} <= set(metrics)
        assert metrics["n_prompts"] == 6 and metrics["ood_n_prompts"] == 6
        assert all(0.0 <= metrics[k] <= 1.0 for k in keys)
        evals = read_rows(str(root / f"data/evals/iter-{n:03d}"))
        for split in ("eval", "eval_ood"):
            health = metrics["health"][split]
            answers = [r for r in evals if r["split"] == split]
            assert health["n_answers"] == 6
            assert health["length_mean"]["value"] == pytest.approx(sum(r["completion_tokens"] for r in answers) / 6, abs=1e-4)
            assert health["hit_budget"]["value"] == pytest.approx(sum(r["finish_reason"] == "length" for r in answers) / 6,
                                                                   abs=1e-4)
            assert ("delta" in health["length_mean"]) == (n > 0)  # changes are against the base model's answers
            by_type = metrics["per_instruction_type"][split]
            assert sum(t["n"] for t in by_type.values()) == sum(len(r["instruction_ids"]) for r in answers)
            assert sum(t["followed"] for t in by_type.values()) == sum(sum(r["strict"]) for r in answers)
            if n > 0:
                base = {r["prompt_id"]: r["passed"] for r in read_rows(str(root / "data/evals/iter-000")) if r["split"] == split}
                vs_base = metrics["vs_base"][split]
                assert vs_base["gained"] == sum(r["passed"] and not base[r["prompt_id"]] for r in answers)
                assert vs_base["lost"] == sum(base[r["prompt_id"]] and not r["passed"] for r in answers)
        assert ("vs_base" in metrics) == (n > 0)
        low, high = metrics["prompt_level_strict_acc_low"], metrics["prompt_level_strict_acc_high"]
        assert low <= metrics["prompt_level_strict_acc"] <= high
    shown = subprocess.run(["dvc", "metrics", "show"], cwd=root, env=env, capture_output=True, text=True)
    assert all(f"metrics/iter-00{n}.json" in shown.stdout for n in (0, 1, 2)), shown.stdout
    assert "health.eval.stray_quote.value" in shown.stdout
    csv = (root / "reports/plots/accuracy_eval.csv").read_text().splitlines()
    assert csv[0].startswith("iteration,loop,") and [line.split(",")[0] for line in csv[1:]] == ["0", "1", "2"]
    record = json.loads((root / "reports/runs/loop-seed1234.json").read_text())
    assert [it["metrics"]["n_prompts"] for it in record["iterations"]] == [6, 6, 6]
    assert "| loop | 1234 |" in (root / "reports/summary.md").read_text()


def test_model_folders_load_and_differ(repro):
    root, _, _ = repro
    shas = set()
    for name in ("base", "iter-001", "iter-002"):
        model, tokenizer = load_causal_lm(root / "models" / name)
        assert tokenizer.chat_template
        shas.add(json.loads((root / "models" / name / "selfsift_model.json").read_text())["weights_sha256"])
    assert len(shas) == 3


def test_second_repro_is_a_no_op_and_a_new_iteration_runs_alone(repro):
    root, env, _ = repro
    again = subprocess.run(["dvc", "repro"], cwd=root, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout
    original = (root / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["iterations"]["iter-003"] = {"generator": "iter-002"}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = subprocess.run(["dvc", "status"], cwd=root, env=env, capture_output=True, text=True).stdout
    finally:
        (root / "params.yaml").write_text(original)
    changed = {line.strip().rstrip(":") for line in status.splitlines() if line and not line.startswith("\t")}
    assert {s for s in changed if "iter-00" in s and "iter-003" not in s} == set(), status
    assert "generate@iter-003" in status


def test_rerun_gives_byte_identical_shards(repro):
    root, env, _ = repro

    def hashes():
        out = {}
        for kind in ("candidates", "judgments", "shards"):
            manifest = json.loads((root / "data" / kind / "iter-001" / "manifest.json").read_text())
            out[kind] = [(s["file"], s["sha256"]) for s in manifest["shards"]]
            if kind == "shards":
                out["pairs"] = manifest["pair_shards"]
                out["rejected"] = manifest["rejected_shards"]
        out["calibration"] = (root / "reports/judges/iter-001.json").read_text()
        return out

    before = hashes()
    for stage in ("generate@iter-001", "judge@iter-001", "curate@iter-001"):
        rerun = subprocess.run(["dvc", "repro", "--force", "--single-item", stage], cwd=root, env=env,
                               capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert hashes() == before


def test_plots_show_the_report_figures(repro):
    root, env, _ = repro
    shown = subprocess.run(["dvc", "plots", "show", "--json"], cwd=root, env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    plots = json.loads(shown.stdout)
    assert not plots.get("errors"), plots["errors"]
    (accuracy,) = plots["data"]["accuracy on eval (prompt-level strict, %, mean over seeds)"]
    values = accuracy["content"]["data"]["values"]
    assert {v["iteration"] for v in values} == {"0", "1", "2"}
    assert {v["field"] for v in values if v["dvc_inferred_y_value"] != ""} == {"loop"}
    record = json.loads((root / "reports/runs/loop-seed1234.json").read_text())
    expected = {str(it["iteration"]): 100 * it["metrics"]["prompt_level_strict_acc"] for it in record["iterations"]}
    assert {v["iteration"]: float(v["loop"]) for v in values} == pytest.approx(expected, abs=0.01)
    for title in ("curation funnel (rows remaining after each step)", "stage wall time (seconds)",
                  "training tokens (one pass)"):
        assert plots["data"][title], title
