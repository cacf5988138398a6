"""Calibration without a verifier: a labels file (`judge.calibration.labels`) of answers labeled good or bad.

It is read like a prompt file (a bad one refused whole, every bad row named by file:line, before the judge
stage writes anything); every calibrated judge scores its rows; the report gets a `labels` section with a
bootstrap interval on each AUC; curate checks deciding judge models against it, and with neither labels nor
verifier labels names both ways out."""

import json
import random
import shutil
from pathlib import Path

import pytest

from pipelines import config as config_module
from pipelines.stages import curate, judge
from tests.stage_fixtures import chdir, write_params, write_prompt_sets
from tests.test_calibration import drawn_figures
from tests.test_custom_judge import CANDIDATES, CHECKS, TRAIN, plain_prompt
from tests.test_judge_stage import write_candidates
from transforms.judges.calibration import auc_interval, roc_auc
from transforms.judges.contract import JudgeResult
from transforms.judges.labeled_scoring import handler_verdicts
from transforms.judges.labels import read_labels
from transforms.prompts.prompt_reader import PromptFileError


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


# What the custom judge `mentions_answer` (tests/test_custom_judge.py) makes of each row: it passes an answer
# naming the reference answer. Row 5 names it but is wrong; row 6 makes the judge raise (unscored).
LABELED = [
    {"prompt": "What is 2 + 3?", "response": "It is 5.", "label": True, "metadata": {"answer": "5"}},
    {"prompt": "What is 2 + 3?", "response": "It is 6.", "label": False, "metadata": {"answer": "5"}},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 4 + 4?"}],
     "response": "Eight, so 8.", "label": 1, "metadata": {"answer": "8"}},
    {"prompt": "What is 4 + 4?", "response": "Nine.", "label": 0, "metadata": {"answer": "8"}},
    {"prompt": "What is 1 + 1?", "response": "Not 2 but 3.", "label": "false", "metadata": {"answer": "2"}},
    {"prompt": "What is 1 + 1?", "response": "BOOM, it is 2.", "label": True, "metadata": {"answer": "2"}},
]
# mentions_answer on rows 1-5: scores 1, 0, 1, 0, 1 for labels T, F, T, F, F. Of the 2 x 3 (true, false) pairs
# the true row outscores the false one in 4 and ties in 2: AUC 5/6; `passed` is right on 4 of 5.
CUSTOM_AUC, CUSTOM_ACCURACY = round(5 / 6, 4), 0.8


def test_a_jsonl_labels_file_is_read_in_file_order_with_prompts_as_prompt_files_give_them(tmp_path):
    answers = read_labels(write_jsonl(tmp_path / "labels.jsonl", LABELED))
    assert [a.line for a in answers] == [1, 2, 3, 4, 5, 6]
    assert [a.label for a in answers] == [True, False, True, False, False, True]
    assert answers[0].response == "It is 5." and answers[0].prompt["messages"] == [
        {"role": "user", "content": "What is 2 + 3?"}]
    assert answers[2].prompt["messages"][0] == {"role": "system", "content": "Be brief."}
    assert json.loads(answers[3].prompt["metadata"]) == {"answer": "8"}
    assert answers[0].prompt["prompt_id"] == answers[1].prompt["prompt_id"]  # a prompt may have many rows


def test_a_csv_labels_file_reads_the_same_fields(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text('prompt;response;label;metadata;instruction_ids\n'
                    'What is 2 + 3?;"It is 5;\nsurely.";TRUE;"{""answer"": ""5""}";\n'
                    'Say hi without commas.;Hi, you;0;;"[""punctuation:no_comma""]"\n'
                    'Say hi.;Hi;1;;\n', encoding="utf-8-sig")
    answers = read_labels(path)
    assert [(a.line, a.response, a.label) for a in answers] == [(2, "It is 5;\nsurely.", True), (4, "Hi, you", False),
                                                               (5, "Hi", True)]
    assert json.loads(answers[0].prompt["metadata"]) == {"answer": "5"}
    assert answers[1].prompt["instruction_ids"] == ["punctuation:no_comma"]


def test_a_labels_file_with_bad_rows_is_refused_naming_every_one_by_line(tmp_path):
    path = write_jsonl(tmp_path / "labels.jsonl", [
        LABELED[0],
        {"prompt": "What is 2 + 3?", "response": "It is 5."},
        {**LABELED[0], "label": "maybe"},
        {**LABELED[0], "response": "   "},
        {**LABELED[0], "metadata": "the answer is 5"},
        {**LABELED[0], "label": 2},
        {"prompt": "What is 2 + 3?", "label": True},
        '{"prompt": "broken',
    ])
    with pytest.raises(PromptFileError) as raised:
        read_labels(path)
    message = str(raised.value)
    assert "7 bad records, so none was read" in message
    for line, reason in ((2, "needs a 'label' field"), (3, "'label' must be true or false (or 1 or 0), got 'maybe'"),
                         (4, "'response' is empty"), (5, "'metadata' must be an object, got str"),
                         (6, "'label' must be true or false (or 1 or 0), got 2"), (7, "needs a 'response' field"),
                         (8, "invalid JSON")):
        assert f"{path}:{line}: {reason}" in message
    assert f"{path}:1:" not in message


def test_bad_csv_rows_are_named_by_the_line_they_start_on(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text('prompt,response,label,metadata\n'
                    'Say hi.,"Hi\nthere",,\n'
                    'Say hi.,Hi,maybe,\n'
                    'Say hi.,,true,\n'
                    'Say hi.,Hi,true,{not json}\n'
                    'Say hi.,Hi,false,\n')
    with pytest.raises(PromptFileError) as raised:
        read_labels(path)
    message = str(raised.value)
    assert "4 bad records" in message
    assert f"{path}:2: needs a 'label' field" in message
    assert f"{path}:4: 'label' must be true or false (or 1 or 0), got 'maybe'" in message
    assert f"{path}:5: needs a 'response' field" in message  # an empty cell is an absent field
    assert f"{path}:6: the metadata cell is not valid JSON" in message


def test_the_bootstrap_interval_holds_the_auc_is_reproducible_and_narrows_with_more_rows():
    rng = random.Random(7)

    def sample(n):
        labels = [i % 2 == 0 for i in range(n)]
        return labels, [min(1.0, max(0.0, rng.gauss(0.6 if label else 0.4, 0.2))) for label in labels]

    small, large = sample(40), sample(400)
    for labels, scores in (small, large):
        low, high = auc_interval(labels, scores)
        assert low < roc_auc(labels, scores) < high
    assert auc_interval(*small, seed=3) == auc_interval(*small, seed=3)
    assert auc_interval(*small, seed=3) != auc_interval(*small, seed=4)
    small_width, large_width = (high - low for low, high in (auc_interval(*small), auc_interval(*large)))
    assert large_width < small_width / 2  # ~ 1 / sqrt(n): ten times the rows, a third of the width
    assert auc_interval([True, True], [0.2, 0.9]) is None


def test_perfectly_separated_scores_have_a_point_interval_at_one():
    assert auc_interval([True, True, False, False], [0.9, 0.8, 0.2, 0.1]) == [1.0, 1.0]


class FakeHandler:
    """A model handler scoring each answer by its length, whose inference raises on a batch holding 'crash'."""

    def __init__(self):
        self.batches = []

    def batch_elements_kwargs(self):
        return {"min_batch_size": 2, "max_batch_size": 2}

    def load_model(self):
        return "model"

    def run_inference(self, batch, model, inference_args=None):
        self.batches.append([r.key for r in batch])
        if any("crash" in r.response for r in batch):
            raise RuntimeError("out of memory")
        return [type("Prediction", (), {"inference": JudgeResult(len(r.response) / 100, True)}) for r in batch]


def test_a_model_handler_scores_labeled_answers_in_its_batches_and_a_failed_batch_is_unscored(tmp_path):
    rows = [{"prompt": "Say hi.", "response": text, "label": True} for text in ("hi", "hello", "crash", "hey", "yo")]
    handler = FakeHandler()
    verdicts = handler_verdicts(handler, read_labels(write_jsonl(tmp_path / "labels.jsonl", rows)))
    assert handler.batches == [["line-1", "line-2"], ["line-3", "line-4"], ["line-5"]]
    assert [v.score for v in verdicts] == [0.02, 0.05, 0.0, 0.0, 0.02]
    assert verdicts[2].error == verdicts[3].error == "inference failed: RuntimeError: out of memory"
    assert not verdicts[0].error and not verdicts[4].error


@pytest.fixture
def workdir(tmp_path, request, tiny_model_dir):
    """Prompts without constraints (nothing for the verifier to label), the custom judge `mentions_answer` and
    the tiny LLM judge, a labels file; params written by `params(...)`."""
    shutil.copytree(tiny_model_dir, tmp_path / "models/base")
    module = f"checks_{request.node.name[:40]}"
    (tmp_path / f"{module}.py").write_text(CHECKS)
    write_prompt_sets(tmp_path, TRAIN, [plain_prompt("e1", "What is 1 + 1?", "2", "eval")],
                      [plain_prompt("o1", "What is 3 + 3?", "6", "eval_ood")])
    (tmp_path / "data/candidates/iter-001").mkdir(parents=True)
    write_candidates(tmp_path, CANDIDATES)
    write_jsonl(tmp_path / "labels.jsonl", LABELED)
    project_params = Path("params.yaml").read_text()

    def params(labels="labels.jsonl", **curate_section):
        (tmp_path / "params.yaml").write_text(project_params)  # each call from the project's params
        write_params(tmp_path, "unused",
                     judge={"num_shards": 1, "heuristics": {"min_words": 1},
                            "llm_judge": {"enabled": True, "model": "models/base", "dtype": "float32"},
                            "custom": [{"name": "mentions_answer", "function": f"{module}:mentions_answer"}],
                            "calibration": {"labels": labels}},
                     curate={"num_shards": 1, **curate_section})
        return config_module.load("params.yaml")

    with chdir(tmp_path):
        yield params


DECIDING_LLM = {"weights": {"ifeval_verifier": 0.0, "mentions_answer": 1.0, "llm_judge": 1.0}}


def test_the_judge_stage_measures_every_calibrated_judge_against_the_labels(workdir, monkeypatch, capsys):
    figures = drawn_figures(monkeypatch)
    manifest = judge.main(workdir(), "iter-001", [])
    report = json.loads(Path("reports/judges/iter-001.json").read_text())
    assert manifest["calibration"] == report
    assert report["verifier_labels"] == 0  # the prompts have no constraints
    labels = report["labels"]
    assert (labels["file"], labels["rows"], labels["label_passed"]) == ("labels.jsonl", 6, 3)
    assert len(labels["sha256"]) == 64
    custom = labels["judges"]["mentions_answer"]
    assert (custom["candidates"], custom["label_passed"], custom["excluded_unscored"]) == (5, 2, 1)
    assert (custom["roc_auc"], custom["accuracy_at_threshold"], custom["threshold"]) == (CUSTOM_AUC, CUSTOM_ACCURACY,
                                                                                         None)
    low, high = custom["roc_auc_ci95"]
    assert low <= CUSTOM_AUC <= high
    assert custom["histogram_label_passed"][-1] == 2 and sum(custom["histogram_label_failed"]) == 3
    llm = labels["judges"]["llm_judge"]
    assert (llm["candidates"], llm["label_passed"], llm["threshold"]) == (6, 3, 0.5)  # the tiny model scores all 6
    assert llm["roc_auc_ci95"][0] <= llm["roc_auc"] <= llm["roc_auc_ci95"][1]

    (figure,) = figures
    titles = [ax.get_title() for ax in figure.axes]
    assert len(titles) == 4  # two judges, against the verifier (top) and the labels (bottom)
    llm_low, llm_high = llm["roc_auc_ci95"]
    assert titles[2] == f"llm_judge: AUC {llm['roc_auc']} [{llm_low}, {llm_high}], acc {llm['accuracy_at_threshold']}"
    assert titles[3].startswith(f"mentions_answer: AUC {CUSTOM_AUC} [{low}, {high}]")
    assert {t.get_text() for t in figure.axes[3].get_legend().get_texts()} == {"labeled true", "labeled false"}

    table = judge.calibration_table(manifest["calibration"])
    assert "against the verifier (0 candidates it could label)" in table
    assert "against labels.jsonl (6 rows, 3 labeled true)" in table
    (custom_line,) = [line for line in table.splitlines()[-2:] if line.startswith("mentions_answer")]
    assert custom_line.split() == ["mentions_answer", "5", "2", str(CUSTOM_AUC), f"[{low:.4f},", f"{high:.4f}]",
                                   str(CUSTOM_ACCURACY)]


def test_a_bad_labels_file_stops_the_judge_stage_before_it_writes_anything(workdir):
    write_jsonl(Path("labels.jsonl"), [LABELED[0], {**LABELED[1], "label": "maybe"}, {**LABELED[2], "response": ""}])
    with pytest.raises(PromptFileError) as raised:
        judge.main(workdir(), "iter-001", [])
    assert str(raised.value).startswith("judge.calibration.labels: labels.jsonl: 2 bad records")
    assert "labels.jsonl:2: 'label' must be" in str(raised.value) and "labels.jsonl:3: 'response' is empty" in str(
        raised.value)
    assert not Path("data/judgments/iter-001").exists() and not Path("reports/judges").exists()
    with pytest.raises(PromptFileError, match="judge.calibration.labels: missing.csv: file not found"):
        judge.main(workdir(labels="missing.csv"), "iter-001", [])


def test_curate_refuses_a_judge_model_with_neither_labels_nor_verifier_labels_naming_both_ways_out(workdir):
    judge.main(workdir(labels=""), "iter-001", [])
    assert "labels" not in json.loads(Path("reports/judges/iter-001.json").read_text())
    with pytest.raises(curate.JudgeRefused) as raised:
        curate.main(workdir(labels="", **DECIDING_LLM), "iter-001", [])
    message = str(raised.value)
    assert "llm_judge" in message and "the verifier could label none of the candidates of iter-001" in message
    assert "judge.calibration.labels" in message and "curate.allow_low_auc_judges" in message
    assert not Path("data/shards/iter-001").exists() and not Path("data/rejected/iter-001").exists()
    allowed = {"weights": DECIDING_LLM["weights"], "allow_low_auc_judges": ["llm_judge"]}
    assert curate.main(workdir(labels="", **allowed), "iter-001", [])["rows_in"] == len(CANDIDATES)


def scoring_by_label(agrees: bool):
    """Stands in for the LLM judge on the labeled answers: a score that follows the labels, or opposes them."""
    def verdicts(handler, answers):
        return [JudgeResult(float(a.label == agrees), a.label == agrees) for a in answers]
    return verdicts


def test_curate_accepts_a_judge_model_that_clears_the_floor_on_the_labels(workdir, monkeypatch):
    monkeypatch.setattr(judge, "handler_verdicts", scoring_by_label(agrees=True))
    judge.main(workdir(), "iter-001", [])
    assert json.loads(Path("reports/judges/iter-001.json").read_text())["labels"]["judges"]["llm_judge"][
        "roc_auc"] == 1.0
    manifest = curate.main(workdir(**DECIDING_LLM), "iter-001", [])
    assert manifest["rows_out"] + sum(manifest["rejected"].values()) == len(CANDIDATES)

    Path("labels.jsonl").write_text(Path("labels.jsonl").read_text() + json.dumps(LABELED[0]) + "\n")
    with pytest.raises(curate.JudgeRefused, match="labels.jsonl has changed since the judges were calibrated"):
        curate.check_judges(workdir(**DECIDING_LLM), "iter-001")
    with pytest.raises(curate.JudgeRefused, match=r"holds no calibration against judge.calibration.labels \(other"):
        curate.check_judges(workdir(labels="other.jsonl", **DECIDING_LLM), "iter-001")


def test_curate_refuses_a_judge_model_below_the_floor_on_the_labels(workdir, monkeypatch):
    monkeypatch.setattr(judge, "handler_verdicts", scoring_by_label(agrees=False))
    judge.main(workdir(), "iter-001", [])
    with pytest.raises(curate.JudgeRefused) as raised:
        curate.main(workdir(**DECIDING_LLM), "iter-001", [])
    assert "do not agree with the labels in labels.jsonl" in str(raised.value)
    assert "llm_judge: ROC AUC 0.0 against the labels in labels.jsonl is below the floor 0.6" in str(raised.value)
    assert not Path("data/shards/iter-001").exists()
