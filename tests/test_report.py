"""The report stage renders from fixture metrics: run records, summary table, figures and plot data."""

import csv
import json

import pytest

from pipelines import config as config_module
from pipelines.report import data as report_data
from pipelines.run import stage_times
from pipelines.run.guard import RUNS_DIR
from pipelines.stages import report
from tests.stage_fixtures import chdir, write_params
from tests.test_health import CLEAN, HEURISTICS, STRAY, row
from transforms.health.intervals import wilson
from transforms.health.metrics import health

FUNNEL = [{"step": "screen", "in": 8, "out": 8, "rejected": {"empty": 0}},
          {"step": "judge policy", "in": 8, "out": 3, "rejected": {"below_threshold": 5}}]
JUDGE = {"llm_judge": {"roc_auc": 0.62, "roc_curve": {"threshold": [1.0, 0.5, 0.0], "fpr": [0.0, 0.2, 1.0],
                                                      "tpr": [0.0, 0.67, 1.0]},
                       "histogram_bins": [0.0, 0.5, 1.0],
                       "histogram_verifier_passed": [1, 2], "histogram_verifier_failed": [4, 1], "candidates": 8}}


def metrics(name, eval_acc, ood_acc, health=None):
    return {"prompt_level_strict_acc": eval_acc, "ood_prompt_level_strict_acc": ood_acc, "n_prompts": 10,
            "model_sha256": f"sha-of-{name}", **({"health": health} if health else {})}


def write_json(root, path, content):
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(json.dumps(content))


def write_workspace(root, accuracies, judges=JUDGE, validated=True, health=None):
    """metrics, manifests, validation and judge reports, model summaries as the loop's stages leave them."""
    for i, (eval_acc, ood_acc) in enumerate(accuracies):
        name = f"iter-{i:03d}"
        write_json(root, f"metrics/{name}.json", metrics(name, eval_acc, ood_acc, health[i] if health else None))
        model = "models/base" if i == 0 else f"models/{name}"
        write_json(root, f"{model}/selfsift_model.json", {"rows": 3, "train_tokens": 400 * i,
                                                          "weights_sha256": f"sha-of-{name}"})
        if i == 0:
            continue
        for kind in ("candidates", "judgments"):
            write_json(root, f"data/{kind}/{name}/manifest.json", {"stage": kind, "of": f"sha-of-iter-{i - 1:03d}"})
        write_json(root, f"data/shards/{name}/manifest.json", {"rows_in": 8, "rows_out": 3, "pairs": 2, "funnel": FUNNEL,
                                                             "kept_per_origin": {"sampled": 2, "relabeled": 1},
                                                             "generator_model_sha256": f"sha-of-iter-{i - 1:03d}"})
        write_json(root, f"reports/validation/{name}.json", {"success": validated})
        write_json(root, f"reports/judges/{name}.json", {"judges": judges})


def stages_ran(root, seconds: dict[str, float]):
    """Records each stage's time as `guarded` does when the stage finishes: after its output exists."""
    with chdir(root):
        config = config_module.load("params.yaml")
        for name, secs in seconds.items():
            link = stage_times.links(config)[name]
            stage_times.record(RUNS_DIR, name, secs, stage_times.current_sha256(link.consumes), link)


def run_report(root, seed, run="loop", accuracies=((0.2, 0.1), (0.3, 0.2), (0.45, 0.25)), judges=JUDGE, health=None):
    write_params(root, "unused", seed=seed, report={"run": run},
                 iterations={"iter-001": {"generator": "base"}, "iter-002": {"generator": "iter-001"}})
    write_workspace(root, accuracies, judges, health=health)
    stages_ran(root, {"generate@iter-001": 12.5, "finetune@iter-001": 30.0})
    with chdir(root):
        return report.main(config_module.load("params.yaml"))


def test_records_each_run_and_summarises_mean_and_spread_over_seeds(tmp_path):
    run_report(tmp_path, seed=1)
    run_report(tmp_path, seed=2, accuracies=((0.2, 0.1), (0.4, 0.2), (0.55, 0.35)))
    no_auc = {"llm_judge": {**JUDGE["llm_judge"], "roc_auc": None}}  # one class missing: all passed, or none
    summary = run_report(tmp_path, seed=1, run="no-filter", accuracies=((0.2, 0.1), (0.25, 0.1), (0.2, 0.15)),
                         judges=no_auc)
    records = sorted(p.name for p in (tmp_path / "reports/runs").glob("*.json"))
    assert records == ["loop-seed1.json", "loop-seed2.json", "no-filter-seed1.json"]
    record = json.loads((tmp_path / "reports/runs/loop-seed2.json").read_text())
    assert [it["train_tokens"] for it in record["iterations"]] == [None, 400, 800]
    assert record["stage_seconds"]["finetune@iter-001"] == 30.0
    assert record["machine"]["cores"] >= 1 and record["machine"]["cpu"]
    assert record["params"]["judge.heuristics"] == {"reject_artifacts": False}
    # the settings the study varies (study.yaml) tell its runs apart in the runs table
    assert record["params"]["revise"] == {"enabled": False}
    assert record["params"]["generate"]["budget"] == "uniform"

    text = (tmp_path / summary).read_text()
    accuracy_rows = text.split("\n\n")[2].splitlines()  # the table after the title and the intro
    rows = {line.split(" | ")[0].strip("| "): line for line in accuracy_rows[2:]}
    # loop: eval iteration 2 = mean of 45 and 55 (spread 45-55), gain over iteration 0 = +30.0
    assert "| 50.0 (45.0–55.0) | +30.0 |" in rows["loop"]
    assert "| 1, 2 |" in rows["loop"]
    low, high = (100 * w for w in wilson(2, 10))  # one seed: its interval (eval counts 10 prompts here)
    assert f"| 20.0 [{low:.1f}–{high:.1f}] | +0.0 |" in rows["no-filter"]
    assert "| 15.0 | +5.0 |" in rows["no-filter"]  # eval_ood: the record does not count its prompts
    # the rows each source contributed: only the origins some run kept, including those of earlier code (relabeled)
    assert "| run | seed | iteration | sampled | relabeled | kept |" in text
    assert "| loop | 2 | 2 | 2 | 1 | 3 |" in text
    assert "| judge policy | 8 | 5 | 3 | below_threshold 5 |" in text
    assert "| 1 | llm_judge | n/a |" in text
    for name in ("accuracy", "funnel", "calibration", "stage_times", "train_tokens"):
        png = tmp_path / "reports/figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"(figures/{name}.png)" in text

    with open(tmp_path / "reports/plots/rejections.csv") as f:
        outcomes = [(row["iteration"], row["outcome"], row["candidates"]) for row in csv.DictReader(f)]
    assert outcomes == [("1", "judge policy: below_threshold", "5"), ("1", "kept", "3"),
                        ("2", "judge policy: below_threshold", "5"), ("2", "kept", "3")]

    with open(tmp_path / "reports/plots/roc/iter-002-llm_judge.csv") as f:
        assert [(row["fpr"], row["tpr"]) for row in csv.DictReader(f)] == [("0.0", "0.0"), ("0.2", "0.67"), ("1.0", "1.0")]

    with open(tmp_path / "reports/plots/accuracy_eval.csv") as f:
        table = list(csv.DictReader(f))
    assert [row["iteration"] for row in table] == ["0", "1", "2"]
    assert float(table[2]["loop"]) == pytest.approx(50.0) and float(table[2]["no-filter"]) == pytest.approx(20.0)


def test_health_table_per_run_and_the_moves_against_the_base(tmp_path):
    base = [row(f"p{i:02d}", CLEAN, tokens=100, language="en") for i in range(40)]
    quoted = [row(f"p{i:02d}", STRAY if i % 2 else CLEAN, tokens=100, language="en") for i in range(40)]
    sets = {"eval": (base, base, quoted), "eval_ood": (base, base, base)}
    health_by_iteration = [{split: health(answers[i], HEURISTICS, None if i == 0 else base)
                            for split, answers in sets.items()} for i in range(3)]
    run_report(tmp_path, seed=1, run="no-health")  # recorded before health metrics existed: no table
    text = (tmp_path / run_report(tmp_path, seed=1, health=health_by_iteration)).read_text()
    section = text.split("## Model health")[1]
    assert "#### loop, seed 1" in section and "no-health" not in section
    stray = next(line for line in section.splitlines() if line.startswith("| stray_quote |"))
    # eval it 0, 1, 2, then eval_ood it 0, 1, 2
    assert stray.split(" | ")[1:4] == ["0.0 %", "0.0 % (+0.0)", "50.0 % (**+50.0**)"]
    assert "iteration 2, eval: answers with a paragraph that opens on a double quote it never closes: 0.0 % → 50.0 %" in section
    assert "iteration 1" not in section.split("Moved against the base:")[1]
    assert "eval_ood: answers with a paragraph" not in section
    assert (tmp_path / "reports/figures/health.png").read_bytes()[:4] == b"\x89PNG"


def test_a_loop_that_stopped_early_reports_only_what_it_reached(tmp_path):
    """The from-scratch control can stop at iteration 1 (nothing passes the filter, validation fails),
    leaving another run's models, metrics and iteration-2 files in the workspace: none of them count."""
    write_params(tmp_path, "unused", report={"run": "from-scratch"},
                 iterations={"iter-001": {"generator": "base"}, "iter-002": {"generator": "iter-001"}})
    write_workspace(tmp_path, [(0.3, 0.2), (0.5, 0.5), (0.6, 0.6)])  # another run's complete loop
    write_workspace(tmp_path, [(0.0, 0.0), (0.9, 0.9)], validated=False)  # this run: new base, stopped at 1
    write_json(tmp_path, "models/base/selfsift_model.json", {"weights_sha256": "sha-of-random-base"})
    write_json(tmp_path, "metrics/iter-000.json", metrics("random-base", 0.0, 0.0))
    write_json(tmp_path, "data/shards/iter-001/manifest.json",
               {"rows_in": 8, "rows_out": 0, "pairs": 0, "funnel": FUNNEL, "generator_model_sha256": "sha-of-random-base"})
    with chdir(tmp_path):
        summary = report.main(config_module.load("params.yaml"))
    text = (tmp_path / summary).read_text()
    assert "| from-scratch |" in text and "kept 0 of 8" in text
    record = json.loads((tmp_path / "reports/runs/from-scratch-seed1234.json").read_text())
    first, second, third = record["iterations"]
    assert first["metrics"]["prompt_level_strict_acc"] == 0.0
    assert first["metrics"]["model_sha256"] == "sha-of-random-base"
    assert second["kept"] == 0 and second["metrics"] is None and second["train_rows"] is None
    assert third["funnel"] is None and third["metrics"] is None and third["judges"] == {}


def test_metrics_of_another_model_do_not_count(tmp_path):
    write_params(tmp_path, "unused", iterations={"iter-001": {"generator": "base"}})
    write_workspace(tmp_path, [(0.2, 0.1), (0.4, 0.3)])
    write_json(tmp_path, "metrics/iter-001.json", metrics("an-older-iter-001", 0.9, 0.9))
    with chdir(tmp_path):
        report.main(config_module.load("params.yaml"))
    record = json.loads((tmp_path / "reports/runs/loop-seed1234.json").read_text())
    assert record["iterations"][1]["metrics"] is None and record["iterations"][1]["kept"] == 3


def test_run_name_must_be_a_plain_name(tmp_path):
    write_params(tmp_path, "unused", report={"run": "../escape"})
    with pytest.raises(config_module.ConfigError, match="report.run"):
        config_module.load(tmp_path / "params.yaml")


def test_the_runs_table_names_each_seeds_machine_and_says_when_it_was_not_recorded(tmp_path):
    run_report(tmp_path, seed=1)
    runs = tmp_path / "reports/runs"
    legacy = json.loads((runs / "loop-seed1.json").read_text())
    del legacy["machine"]
    (runs / "loop-seed7.json").write_text(json.dumps({**legacy, "seed": 7}))
    text = (tmp_path / run_report(tmp_path, seed=1)).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| loop | base_model"))
    assert f"1: {legacy_cpu(tmp_path)}" in row and "7: not recorded" in row


def legacy_cpu(root):
    machine = json.loads((root / "reports/runs/loop-seed1.json").read_text())["machine"]
    return f"{machine['cpu']}, {machine['cores']} cores"


LOOP_STAGES = ("generate", "judge", "curate", "validate", "finetune", "evaluate")


def test_a_run_record_holds_only_the_times_of_its_own_chain(tmp_path):
    """A from-scratch control after a full loop stops at iteration 1 (validation fails): the loop's
    later files stay in the workspace, and their times must not appear in the control's record."""
    iterations = {"iter-001": {"generator": "base"}, "iter-002": {"generator": "iter-001"}}
    write_params(tmp_path, "unused", report={"run": "loop"}, iterations=iterations)
    write_workspace(tmp_path, [(0.3, 0.2), (0.5, 0.5), (0.6, 0.6)])
    (tmp_path / "data/prompts").mkdir(parents=True)
    (tmp_path / "data/prompts/train.parquet").write_bytes(b"the prompts both runs share")
    every_stage = {f"{stage}@iter-00{i}": 10.0 * i for i in (1, 2) for stage in LOOP_STAGES}
    stages_ran(tmp_path, {"prompts": 1.0, "evaluate@iter-000": 5.0, **every_stage})
    with chdir(tmp_path):
        report.main(config_module.load("params.yaml"))
    loop = json.loads((tmp_path / "reports/runs/loop-seed1234.json").read_text())["stage_seconds"]
    assert set(loop) == {"prompts", "evaluate@iter-000", *every_stage}
    with open(tmp_path / "reports/plots/stage_times.csv") as f:
        assert [row["stage"] for row in csv.DictReader(f)] == ["prompts", "evaluate@iter-000", *every_stage]

    write_params(tmp_path, "unused", report={"run": "from-scratch"}, iterations=iterations)
    write_json(tmp_path, "models/base/selfsift_model.json", {"weights_sha256": "sha-of-random-base"})
    write_json(tmp_path, "metrics/iter-000.json", metrics("random-base", 0.0, 0.0))
    for kind in ("candidates", "judgments"):
        write_json(tmp_path, f"data/{kind}/iter-001/manifest.json", {"stage": kind, "of": "random-base"})
    write_json(tmp_path, "data/shards/iter-001/manifest.json",
               {"rows_in": 8, "rows_out": 0, "pairs": 0, "funnel": FUNNEL, "generator_model_sha256": "sha-of-random-base"})
    write_json(tmp_path, "reports/validation/iter-001.json", {"success": False})
    stages_ran(tmp_path, {"evaluate@iter-000": 6.0, "generate@iter-001": 7.0, "judge@iter-001": 8.0,
                          "curate@iter-001": 9.0})
    with chdir(tmp_path):
        report.main(config_module.load("params.yaml"))
    control = json.loads((tmp_path / "reports/runs/from-scratch-seed1234.json").read_text())["stage_seconds"]
    assert control == {"prompts": 1.0, "evaluate@iter-000": 6.0, "generate@iter-001": 7.0, "judge@iter-001": 8.0,
                       "curate@iter-001": 9.0}


def test_a_time_counts_only_for_the_output_the_stage_produced(tmp_path):
    write_params(tmp_path, "unused", iterations={"iter-001": {"generator": "base"}})
    write_workspace(tmp_path, [(0.2, 0.1), (0.4, 0.3)])
    stages_ran(tmp_path, {f"{stage}@iter-001": 3.0 for stage in LOOP_STAGES})
    write_json(tmp_path, "data/judgments/iter-001/manifest.json", {"stage": "judgments", "rewritten": "by hand"})
    with chdir(tmp_path):
        report.main(config_module.load("params.yaml"))
    times = json.loads((tmp_path / "reports/runs/loop-seed1234.json").read_text())["stage_seconds"]
    # judge did not make the judgments now there, so curate's input is not trusted; the shards the
    # chain reached are, so validate and what follows count
    assert set(times) == {"generate@iter-001", "validate@iter-001", "finetune@iter-001", "evaluate@iter-001"}


def test_accuracy_intervals_pool_the_prompts_of_every_seed():
    seeds = [{"iterations": [{"iteration": 1, "metrics": {"prompt_level_strict_acc": acc, "n_prompts": 10,
                                                          "ood_prompt_level_strict_acc": 0.5, "ood_n_prompts": 4}}]}
             for acc in (0.3, 0.4)]
    low, high = report_data.pooled_interval(seeds, "eval")[1]
    assert (low, high) == pytest.approx(tuple(100 * w for w in wilson(7, 20)))
    assert report_data.pooled_interval(seeds, "eval_ood")[1] == pytest.approx(tuple(100 * w for w in wilson(4, 8)))
    assert 15 < low < 35 < high < 60


def test_stage_times_show_in_the_order_the_loop_runs_them(tmp_path):
    write_params(tmp_path, "unused", iterations={"iter-001": {"generator": "base"}, "iter-002": {"generator": "iter-001"}})
    with chdir(tmp_path):
        names = list(stage_times.links(config_module.load("params.yaml")))
    assert sorted(names, key=stage_times.pipeline_order) == names  # one order: the links and the display agree
    shuffled = dict(sorted((name, float(n)) for n, name in enumerate(names)))  # a record's keys, sorted by name
    assert [name for name, _ in stage_times.in_pipeline_order(shuffled)] == names


def own_set(n_passed, n_prompts=20):
    low, high = wilson(n_passed, n_prompts)
    return {"judge": "says_yes", "n_prompts": n_prompts, "n_passed": n_passed, "n_errors": 0,
            "accuracy": n_passed / n_prompts, "accuracy_low": low, "accuracy_high": high}


def report_with_sets(root, passed_per_iteration):
    """Adds an eval set of one's own (`sets.mine` in metrics/iter-N.json) to the workspace, and reports again."""
    for i, passed in enumerate(passed_per_iteration):
        path = root / f"metrics/iter-{i:03d}.json"
        metrics = json.loads(path.read_text())
        if passed is not None:
            path.write_text(json.dumps({**metrics, "sets": {"mine": own_set(passed)}}))
    with chdir(root):
        return report.main(config_module.load("params.yaml"))


def test_eval_sets_of_your_own_show_per_run_and_iteration(tmp_path):
    assert "Eval sets of your own" not in (tmp_path / run_report(tmp_path, seed=1)).read_text()  # none: as before
    report_with_sets(tmp_path, (5, 8, 12))
    run_report(tmp_path, seed=2)
    text = (tmp_path / report_with_sets(tmp_path, (5, 10, None))).read_text()
    section = text.split("## Eval sets of your own")[1].split("## Runs")[0]
    row = next(line for line in section.splitlines() if line.startswith("| loop | mine |"))
    # iteration 0: 25 % on both seeds, interval over their 40 prompts; iteration 2: seed 1 alone, 12 of 20
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    expected = [(25.0, wilson(10, 40)), (45.0, wilson(18, 40)), (60.0, wilson(12, 20))]
    assert cells == ["loop", "mine", "says_yes", *(f"{a:.1f} [{100 * lo:.1f}–{100 * hi:.1f}]" for a, (lo, hi) in expected)]
    record = json.loads((tmp_path / "reports/runs/loop-seed2.json").read_text())
    assert [(it["metrics"] or {}).get("sets", {}).get("mine", {}).get("accuracy") for it in record["iterations"]] == \
        [0.25, 0.5, None]


def with_significance(root, per_iteration):
    """Adds `vs_base` and `per_instruction_type` as evaluate writes them, and reports again.
    per_iteration: [(vs_base eval entry or None, {type: (followed, n)})]."""
    for i, (vs_base, types) in enumerate(per_iteration):
        path = root / f"metrics/iter-{i:03d}.json"
        metrics = json.loads(path.read_text())
        per_type = {t: {"n": n, "followed": f, "accuracy": f / n} for t, (f, n) in types.items()}
        metrics["per_instruction_type"] = {"eval": per_type, "eval_ood": per_type}
        if vs_base:
            metrics["vs_base"] = {"eval": vs_base}
        path.write_text(json.dumps(metrics))
    with chdir(root):
        return report.main(config_module.load("params.yaml"))


def difference(points, p):
    return {"difference": points / 100, "difference_low": (points - 5) / 100, "difference_high": (points + 5) / 100,
            "p_value": p, "significant": p < 0.05}


def test_paired_differences_are_bold_only_when_significant_and_rare_types_are_tracked(tmp_path):
    run_report(tmp_path, seed=1)
    text = (tmp_path / with_significance(tmp_path, [
        (None, {"change_case:english_lowercase": (0, 30), "punctuation:no_comma": (10, 30)}),
        (difference(4.0, 0.21), {"change_case:english_lowercase": (3, 30), "punctuation:no_comma": (12, 30)}),
        (difference(12.5, 0.003), {"change_case:english_lowercase": (9, 30), "punctuation:no_comma": (20, 30)}),
    ])).read_text()
    paired = text.split("## Paired against the base model")[1].split("## ")[0]
    assert "| loop | 1 | 1 | +4.0 [-1.0, +9.0] p=0.21 | – |" in paired
    assert "| loop | 1 | 2 | **+12.5 [+7.5, +17.5] p=0.003** | – |" in paired
    rare = text.split("## Instruction types the base model rarely follows")[1].split("## ")[0]
    assert "punctuation:no_comma" not in rare  # the base follows it on a third of the prompts
    low, high = wilson(9, 30)
    assert f"| loop | change_case:english_lowercase | 0.0 [0.0–{100 * wilson(0, 30)[1]:.1f}] (n=30) |" in rare
    assert f"30.0 [{100 * low:.1f}–{100 * high:.1f}] (n=30) |" in rare
    assert "| 1 | 3 | 400 | sampled 2, relabeled 1 |" in text  # the training rows each source contributed


def test_rare_types_of_several_seeds_show_their_mean_and_spread_not_a_pooled_interval(tmp_path):
    types = [{"change_case:english_lowercase": (0, 30)}, {"change_case:english_lowercase": (3, 30)},
             {"change_case:english_lowercase": (6, 30)}]
    run_report(tmp_path, seed=1)
    with_significance(tmp_path, [(None, types[0]), (None, types[1]), (None, types[2])])
    run_report(tmp_path, seed=2)
    types[2] = {"change_case:english_lowercase": (12, 30)}
    text = (tmp_path / with_significance(tmp_path, [(None, t) for t in types])).read_text()
    rare = text.split("## Instruction types the base model rarely follows")[1].split("## ")[0]
    assert "| loop | change_case:english_lowercase | 0.0 (0.0–0.0) (n=30) | 10.0 (10.0–10.0) (n=30) | " \
           "30.0 (20.0–40.0) (n=30) |" in rare
