import json

import pytest

from transforms.curation.decontamination import build_index, contamination, eval_file_texts

EVAL = "Write a short story about a lighthouse keeper who befriends a seagull and answer in exactly three paragraphs"


@pytest.fixture
def index():
    return build_index([("eval:e1", EVAL)], 13)


def test_planted_overlap_is_caught_and_named(index):
    answer = "Here you go. " + " ".join(EVAL.split()[2:15]) + " and more words follow here"
    assert contamination(answer, index, 13) == "eval:e1"


def test_overlap_survives_case_punctuation_and_spacing(index):
    answer = EVAL.upper().replace(" ", "  ,  ")
    assert contamination(answer, index, 13) == "eval:e1"


def test_clean_text_and_short_overlaps_are_left_alone(index):
    assert contamination("A lighthouse keeper befriends a seagull in three paragraphs.", index, 13) is None
    twelve = " ".join(EVAL.split()[:12])  # one word short of an n-gram
    assert contamination(f"{twelve} but then something else entirely", index, 13) is None
    assert contamination("", index, 13) is None


def test_text_the_train_prompts_share_with_eval_is_not_leakage():
    wording = "your entire response should be in english and in all lowercase letters no capitals allowed"
    index = build_index([("eval:e1", f"Describe a volcano. {wording.capitalize()}.")], 13,
                        shared_with_training=[f"Describe a garden. {wording.capitalize()}."])
    assert contamination(f"Sure. {wording}", index, 13) is None
    assert contamination("we describe a volcano your entire response should be in english and in all", index, 13) == "eval:e1"


def test_extra_eval_files(tmp_path):
    jsonl = tmp_path / "extra.jsonl"
    jsonl.write_text(json.dumps({"key": 1, "prompt": "hello", "messages": [{"role": "user", "content": "hi there"}]})
                     + "\n\n")
    assert eval_file_texts(str(jsonl)) == [(f"{jsonl}:1", "hello"), (f"{jsonl}:1", "user"), (f"{jsonl}:1", "hi there")]
    txt = tmp_path / "extra.txt"
    txt.write_text("whole file")
    assert eval_file_texts(str(txt)) == [(str(txt), "whole file")]


@pytest.mark.parametrize("name, content, message", [
    ("bad.jsonl", '{"prompt": "ok"}\n{not json\n', "bad.jsonl:2: not valid JSON"),
    ("bad.csv", "a,b\n", "must be .jsonl, .parquet or .txt"),
])
def test_bad_eval_files_fail_with_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        eval_file_texts(str(path))


def test_missing_eval_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="extra_eval_files"):
        eval_file_texts(str(tmp_path / "nope.jsonl"))
