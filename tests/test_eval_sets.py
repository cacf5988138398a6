"""Eval sets of your own (`evaluate.sets`): declared with a prompt file and a judge, written by the `prompts`
stage beside eval and eval_ood, kept out of training (leak check, decontamination), answered by `evaluate` and
scored by their judge, each under `sets` in metrics/iter-N.json with a 95 % Wilson interval."""

import json
import shutil

import pytest

from pipelines.cli import main
from pipelines.config import ConfigError, load
from pipelines.stages.curate import decontamination_index
from tests.stage_fixtures import chdir, write_params
from tests.test_prompt_reader import IFEVAL_LINES
from transforms.evaluation.metrics import METRIC_KEYS
from transforms.health.intervals import wilson
from transforms.io.parquet_io import read_rows

JUDGE = '''
def says_yes(prompt, response):
    """Passes the prompts whose metadata says so, whatever the answer; raises on a prompt marked boom."""
    if prompt["metadata"].get("boom"):
        raise RuntimeError("the judge broke")
    return (1.0, True, {"why": "metadata"}) if prompt["metadata"]["pass"] else (0.0, False, {})
'''
# Long enough (13+ words) to leave n-grams in the decontamination index.
MINE = [{"prompt_id": f"m{i}", "prompt": f"Tell me a short story number {i} about a lighthouse keeper who finds a "
                                         f"strange old map on the beach.", "metadata": meta}
        for i, meta in enumerate([{"pass": True}, {"pass": True}, {"pass": False}, {"pass": False, "boom": True}])]
SMALL = {"train_size": 4, "eval_size": 3, "eval_ood_size": 3}


def jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path.name


@pytest.fixture
def project(tmp_path, request):
    module = f"eval_judge_{request.node.name[:40].replace('[', '_').replace(']', '_').replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(JUDGE)
    jsonl(tmp_path / "mine.jsonl", MINE)
    jsonl(tmp_path / "input_data.jsonl", IFEVAL_LINES)
    write_params(tmp_path, "unused")  # the project's params.yaml, which later calls (run in tmp_path) amend
    with chdir(tmp_path):
        yield tmp_path, module


def params(root, module, sets=None, **evaluate):
    sets = {"mine": {"prompts": "mine.jsonl", "judge": "says_yes"},
            "ifeval": {"prompts": "input_data.jsonl", "judge": "ifeval_verifier"}} if sets is None else sets
    return write_params(root, "unused", prompts=SMALL, judge={"custom": [{"name": "says_yes", "function": f"{module}:says_yes"}]},
                        evaluate={"max_new_tokens": 4, "micro_batch_size": 8, "dtype": "float32", "sets": sets, **evaluate})


def run(capsys, *argv):
    code = main(list(argv))
    return code, capsys.readouterr().err


# -- params -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sets, message", [
    ({"mine": {"prompts": "mine.jsonl", "judge": "nope"}}, r"evaluate.sets.mine.judge: unknown judge 'nope' \(a set is "
                                                          r"scored by one of: ifeval_verifier, says_yes\)"),
    ({"mine": {"prompts": "mine.jsonl", "judge": "heuristic_repetition"}},
     r"evaluate.sets.mine.judge: 'heuristic_repetition' is a heuristic judge, which cannot score an eval set"),
    ({"mine": {"prompts": "mine.jsonl", "judge": "llm_judge"}},
     r"evaluate.sets.mine.judge: 'llm_judge' is a model judge, which cannot score an eval set"),
    ({"eval_ood": {"prompts": "mine.jsonl", "judge": "says_yes"}}, r"evaluate.sets.eval_ood: 'eval_ood' is a built-in"),
    ({"train": {"prompts": "mine.jsonl", "judge": "says_yes"}}, r"evaluate.sets.train: 'train' is a built-in"),
    ({"My-Set": {"prompts": "mine.jsonl", "judge": "says_yes"}}, r"evaluate.sets.My-Set: the name must be lowercase"),
    ({"mine": {"prompts": "mine.jsonl"}}, r"evaluate.sets.mine: missing required key 'judge'"),
])
def test_a_bad_set_is_refused_naming_its_key(project, sets, message):
    root, module = project
    params(root, module, sets=sets)
    with pytest.raises(ConfigError, match=message):
        load("params.yaml")


def test_no_sets_is_the_default_and_only_eval_and_eval_ood_are_scored(project):
    root, module = project
    write_params(root, "unused")
    evaluate = load("params.yaml").evaluate
    assert evaluate.sets == {} and evaluate.judge_of() == {"eval": "ifeval_verifier", "eval_ood": "ifeval_verifier"}


# -- the prompts stage -------------------------------------------------------------------------------------------------

def test_prompts_writes_each_set_beside_the_built_in_ones(project, capsys):
    root, module = project
    params(root, module)
    code, err = run(capsys, "prompts")
    assert code == 0, err
    assert sorted(p.name for p in (root / "data/prompts").iterdir()) == [
        "eval.parquet", "eval_ood.parquet", "ifeval.parquet", "mine.parquet", "train.parquet"]
    mine = read_rows("data/prompts/mine.parquet")
    assert [(r["prompt_id"], r["split"], json.loads(r["metadata"])) for r in mine] == [
        (p["prompt_id"], "mine", p["metadata"]) for p in MINE]
    ifeval = {r["prompt_id"]: r for r in read_rows("data/prompts/ifeval.parquet")}
    assert sorted(ifeval) == ["1000", "1040", "1174"] and ifeval["1174"]["instruction_ids"][1] == \
        "length_constraints:number_sentences"
    # curate keeps answers that copy a set's prompt out of the corpus, as for eval and eval_ood
    labels = set(decontamination_index(load("params.yaml")).values())
    assert {f"mine:m{i}" for i in range(4)} <= labels and any(label.startswith("ifeval:") for label in labels)
    assert any(label.startswith("eval:") for label in labels)


def test_a_train_prompt_in_a_set_is_refused_and_nothing_is_written(project, capsys):
    root, module = project
    params(root, module)
    assert run(capsys, "prompts")[0] == 0
    before = {p.name: p.read_bytes() for p in (root / "data/prompts").iterdir()}
    jsonl(root / "train.jsonl", [{"prompt_id": "t0", "prompt": "Write a haiku about rain."},
                                 {"prompt_id": "t1", "prompt": MINE[2]["prompt"]}])
    write_params(root, "unused", prompts={**SMALL, "source": "train.jsonl"})
    code, err = run(capsys, "prompts")
    assert code == 2
    assert "1 train prompts are also evaluate.sets.mine prompts (first: t1); remove them" in err, err
    assert {p.name: p.read_bytes() for p in (root / "data/prompts").iterdir()} == before


@pytest.mark.parametrize("content, message", [
    ('{"prompt": "fine"}\n{"prompt": 3}\n', "mine.jsonl:2: 'prompt' must be a string"),
    (None, "evaluate.sets.mine: judge ifeval_verifier checks IFEval constraints, but 4 prompts of mine.jsonl have no "
           "instruction_ids (first: m0)"),
])
def test_a_bad_set_file_is_refused_naming_the_file(project, capsys, content, message):
    root, module = project
    if content is not None:
        (root / "mine.jsonl").write_text(content)
    params(root, module, sets={"mine": {"prompts": "mine.jsonl", "judge": "ifeval_verifier"}})
    code, err = run(capsys, "prompts")
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (root / "data/prompts/train.parquet").exists()


# -- evaluate ---------------------------------------------------------------------------------------------------------

@pytest.fixture
def answered(project, varied_model_dir, capsys):
    root, module = project
    shutil.copytree(varied_model_dir, root / "models/base")
    params(root, module)
    assert run(capsys, "prompts")[0] == 0
    return root, module


def test_evaluate_scores_each_set_with_its_judge(answered, capsys):
    root, module = answered
    params(root, module, max_error_share=0.3)  # 1 of mine's 4 prompts raises: 25 %
    code, err = run(capsys, "evaluate", "--iteration", "0")
    assert code == 0, err
    metrics = json.loads((root / "metrics/iter-000.json").read_text())
    keys = ("n_prompts", "n_errors", "n_prompts_over_budget", *METRIC_KEYS, *(f"{k}_{end}" for k in METRIC_KEYS
                                                                             for end in ("low", "high")))
    builtin = {prefix + key for prefix in ("", "ood_") for key in keys}
    # the built-in keys as they are without sets of one's own (the base model has no `vs_base`)
    assert set(metrics) == {"model", "model_sha256", "health", "per_instruction_type", "sets", *builtin}
    assert set(metrics["health"]) == {"eval", "eval_ood"}
    low, high = wilson(2, 4)
    assert metrics["sets"]["mine"] == {"judge": "says_yes", "n_prompts": 4, "n_passed": 2, "n_errors": 1,
                                       "accuracy": 0.5, "accuracy_low": low, "accuracy_high": high}
    rows = {(r["split"], r["prompt_id"]): r for r in read_rows(str(root / "data/evals/iter-000"))}
    assert [rows[("mine", f"m{i}")]["passed"] for i in range(4)] == [True, True, False, False]
    assert json.loads(rows[("mine", "m0")]["detail"]) == {"why": "metadata"}
    assert "RuntimeError: the judge broke" in rows[("mine", "m3")]["error"]

    ifeval = metrics["sets"]["ifeval"]
    answers = [r for (split, _), r in rows.items() if split == "ifeval"]
    assert ifeval["judge"] == "ifeval_verifier" and ifeval["n_prompts"] == 3 and ifeval["n_errors"] == 0
    assert ifeval["n_passed"] == sum(r["passed"] for r in answers) == sum(all(r["strict"]) for r in answers)
    assert ifeval["accuracy"] == ifeval["prompt_level_strict_acc"]
    assert (ifeval["accuracy_low"], ifeval["accuracy_high"]) == wilson(ifeval["n_passed"], 3)
    assert all(len(r["strict"]) == len(r["instruction_ids"]) == 3 and r["error"] is None for r in answers)


def test_the_error_share_applies_to_each_set(answered, capsys):
    root, module = answered
    params(root, module, max_error_share=0.2)
    code, err = run(capsys, "evaluate", "--iteration", "0")
    assert code == 2
    assert "evaluate refuses to report an accuracy" in err and "mine: 1 of 4 prompts (25.0%)" in err, err
    assert "ifeval:" not in err and "eval:" not in err
    assert not (root / "metrics/iter-000.json").exists()


def test_a_set_added_without_its_prompts_stops_evaluate_before_it_clears_anything(answered, capsys):
    root, module = answered
    params(root, module, max_error_share=0.3)
    assert run(capsys, "evaluate", "--iteration", "0")[0] == 0
    before = (root / "metrics/iter-000.json").read_bytes()
    answers = sorted(p.name for p in (root / "data/evals/iter-000").iterdir())
    params(root, module, sets={"mine": {"prompts": "mine.jsonl", "judge": "says_yes"},
                               "more": {"prompts": "mine.jsonl", "judge": "says_yes"}}, max_error_share=0.3)
    code, err = run(capsys, "evaluate", "--iteration", "0")  # `selfsift prompts` has not written data/prompts/more
    assert code != 0 and "more" in err
    assert (root / "metrics/iter-000.json").read_bytes() == before
    assert sorted(p.name for p in (root / "data/evals/iter-000").iterdir()) == answers
