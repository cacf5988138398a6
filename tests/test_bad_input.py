"""The bad-input matrix, through the `selfsift` command a user runs: each bad prompt file or params
file fails with an error naming file, line and field (or key), no traceback, and every output
written before stays byte-identical. Inputs that are odd but valid are kept, every record of them.
"""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.cli import main
from tests.stage_fixtures import chdir, write_params

SIZES = {"train_size": 8, "eval_size": 4, "eval_ood_size": 4}
GOOD = '{"prompt_id": "ok", "prompt": "Write a short poem about rivers."}\n'

BAD_PROMPT_FILES = {
    "invalid UTF-8": (GOOD.encode() + b'{"prompt": "caf\xe9"}\n', ":2: invalid UTF-8 at byte 15"),
    "truncated last line": (GOOD + '{"prompt_id": "cut", "prompt": "Descri', ":2: invalid JSON"),
    "missing prompt field": (GOOD + '{"prompt_id": "x", "text": "hello"}\n', ":2: needs a 'prompt' or 'messages' field"),
    "prompt of the wrong type": (GOOD + '{"prompt": ["a", "b"]}\n', ":2: 'prompt' must be a string, got list"),
    "instruction_ids of the wrong type": (GOOD + '{"prompt": "Hi there.", "instruction_ids": "punctuation:no_comma"}\n',
                                          ":2: 'instruction_ids' must be a list of strings"),
    "prompt_id of the wrong type": (GOOD + '{"prompt_id": 7, "prompt": "Hi there."}\n',
                                    ":2: 'prompt_id' must be a non-empty string"),
    "duplicate prompt ids": (GOOD + GOOD, ":2: duplicate prompt_id 'ok' (first on line 1)"),
    "empty prompt": (GOOD + '{"prompt": ""}\n', ":2: 'prompt' is empty"),
    "whitespace-only prompt": (GOOD + '{"prompt": " \\t\\n "}\n', ":2: 'prompt' is empty"),
    "whitespace-only user message": (GOOD + '{"messages": [{"role": "user", "content": "  "}]}\n',
                                     ":2: the user message is empty"),
    "conversation ending with the assistant": (
        GOOD + '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}\n',
        ":2: the last message must be the user's"),
    "unknown instruction id": (GOOD + '{"prompt": "Hi there.", "instruction_ids": ["format:shouting"]}\n',
                               ":2: unknown instruction id"),
    "bad kwargs": (GOOD + '{"prompt": "List fruit.", "instruction_ids": ["detectable_format:number_bullet_lists"],'
                          ' "kwargs": [{"num_bullets": "three", "colour": 1}]}\n', ":2: bad kwargs"),
    "kwargs that are not JSON": (GOOD + '{"prompt": "Hi.", "instruction_ids": ["punctuation:no_comma"], '
                                        '"kwargs": ["{oops"]}\n', ":2: kwargs[0] is not valid JSON"),
    "a bell control character": (GOOD + '{"prompt": "Ring \\u0007 the bell."}\n',
                                 ":2: 'prompt' contains the control character U+0007 at offset 5"),
    "a NUL character": (GOOD + '{"prompt_id": "n\\u0000", "prompt": "Hi."}\n',
                        ":2: 'prompt_id' contains the control character U+0000"),
    "a bidi override hiding text": (GOOD + '{"messages": [{"role": "user", "content": "Say \\u202eolleh"}]}\n',
                                    ":2: messages[0].content contains the control character U+202E"),
    "no prompts at all": ("\n \n", "prompts.jsonl: no prompts in file"),
}


def run(root, capsys, *argv):
    with chdir(root):
        code = main(list(argv))
    return code, capsys.readouterr()


@pytest.fixture
def project(tmp_path, capsys):
    """A project whose prompts stage already ran once: the output a bad input must not damage."""
    write_params(tmp_path, "unused", prompts=SIZES)
    assert run(tmp_path, capsys, "prompts")[0] == 0
    return tmp_path


def snapshot(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted((root / "data").rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", sorted(BAD_PROMPT_FILES))
def test_bad_prompt_file_is_named_and_loses_nothing(project, capsys, case):
    content, message = BAD_PROMPT_FILES[case]
    before = snapshot(project)
    (project / "prompts.jsonl").write_bytes(content if isinstance(content, bytes) else content.encode())
    write_params(project, "unused", prompts={**SIZES, "source": "prompts.jsonl"})
    code, out = run(project, capsys, "prompts")
    assert code == 2
    assert message in out.err, out.err
    assert "prompts.jsonl" in out.err and "Traceback" not in out.err
    assert snapshot(project) == before


def test_bad_parquet_column_type_is_named(project, capsys):
    pq.write_table(pa.Table.from_pylist([{"prompt_id": "a", "prompt": "Fine."}, {"prompt_id": "b", "prompt": None}]),
                   project / "prompts.parquet")
    before = snapshot(project)
    write_params(project, "unused", prompts={**SIZES, "source": "prompts.parquet"})
    code, out = run(project, capsys, "prompts")
    assert code == 2 and "prompts.parquet:2: 'prompt' must be a string, got NoneType" in out.err
    assert snapshot(project) == before


def test_mixed_scripts_and_odd_but_valid_text_are_kept_exactly(project, capsys):
    texts = ["Écris un haïku sur Москва и 東京, then translate it to English.",
             "مرحبا! Answer in English: what is 2+2? 🙂",
             "Tabs\tand\nnewlines stay; so do combining marks: e\u0301."]
    (project / "prompts.jsonl").write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts))
    write_params(project, "unused", prompts={**SIZES, "source": "prompts.jsonl"})
    code, out = run(project, capsys, "prompts")
    assert code == 0, out.err
    rows = pq.read_table(project / "data/prompts/train.parquet").to_pylist()
    assert sorted(r["messages"][-1]["content"] for r in rows) == sorted(texts)  # every record, byte for byte


def test_every_bad_line_is_named_at_once_and_loses_nothing(project, capsys):
    before = snapshot(project)
    lines = [GOOD.strip(), '{"prompt": "cut', "", '{"prompt": ""}', GOOD.strip(), '{"prompt": "Fine."}']
    (project / "prompts.jsonl").write_text("\r\n".join(lines) + "\r\n")
    write_params(project, "unused", prompts={**SIZES, "source": "prompts.jsonl"})
    code, out = run(project, capsys, "prompts")
    assert code == 2, out.err
    assert "prompts.jsonl: 3 bad records, so none was read:" in out.err
    for named in (":2: invalid JSON", ":4: 'prompt' is empty", ":5: duplicate prompt_id 'ok' (first on line 1)"):
        assert f"prompts.jsonl{named}" in out.err, out.err
    assert "Traceback" not in out.err and snapshot(project) == before


EXCEL_CSV = ("\ufeffprompt_id,prompt\r\n"
             'r1,"Write a poem about rivers, lakes and seas.\nUse two stanzas."\r\n'
             'r2,"Say ""hello"" in French."\r\n')


def test_an_excel_csv_export_is_read_whole(project, capsys):
    (project / "prompts.csv").write_bytes(EXCEL_CSV.encode())
    write_params(project, "unused", prompts={**SIZES, "source": "prompts.csv"})
    code, out = run(project, capsys, "prompts")
    assert code == 0, out.err
    rows = pq.read_table(project / "data/prompts/train.parquet").to_pylist()
    assert {r["prompt_id"]: r["messages"][-1]["content"] for r in rows} == {
        "r1": "Write a poem about rivers, lakes and seas.\nUse two stanzas.", "r2": 'Say "hello" in French.'}


def test_a_csv_row_split_by_an_unquoted_comma_is_named_and_loses_nothing(project, capsys):
    before = snapshot(project)
    (project / "prompts.csv").write_bytes(EXCEL_CSV.encode() + b"r3,Write about owls, then bats.\r\n")
    write_params(project, "unused", prompts={**SIZES, "source": "prompts.csv"})
    code, out = run(project, capsys, "prompts")
    assert code == 2 and "prompts.csv:5: 3 fields where the header has 2" in out.err, out.err
    assert "Traceback" not in out.err and snapshot(project) == before


BAD_PARAMS = {
    "unknown key": ({"generate": {"candidates": 4}}, "params.yaml.generate: unknown key(s) candidates"),
    "K = 0": ({"generate": {"candidates_per_prompt": 0}}, "generate.candidates_per_prompt must be at least 1"),
    "negative temperature": ({"generate": {"temperature": -1.0}}, "generate.temperature must be >= 0"),
    "verifier threshold above 1": ({"judge": {"verifier": {"threshold": 1.5}}}, "judge.verifier.threshold must be in [0, 1]"),
    "judge threshold below 0": ({"judge": {"llm_judge": {"threshold": -0.1}}}, "judge.llm_judge.threshold must be in [0, 1]"),
    "min_score above 1": ({"curate": {"min_score": 2}}, "curate.min_score must be in [0, 1]"),
    "wrong type": ({"finetune": {"epochs": "two"}}, "finetune.epochs: expected float"),
    "model path escaping the project": ({"base_model": {"source": "m.gguf", "path": "../elsewhere/model"}},
                                        "base_model.path: '../elsewhere/model' must be a relative path inside models/"),
    "absolute output path": ({"prompts": {**SIZES, "out_dir": "/tmp/prompts"}},
                             "prompts.out_dir: '/tmp/prompts' must be a relative path"),
    "missing generator model": ({}, "iterations.iter-001.generator: model folder not found: models/base"),
    "publish folder over the data": ({"publish": {"folder": "data"}},
                                     "publish.folder: 'data' must be a relative path inside publish/"),
    "a judge function that cannot be imported": ({"judge": {"custom": [{"name": "mine", "function": "nowhere:check"}]}},
                                                 "judge.custom[0].function: cannot import 'nowhere'"),
    "an unpinned Hub model": ({"base_model": {"source": "hf://owner/model", "sha256": ""}},
                              "base_model.source: hf://owner/model is not pinned to a commit"),
}


@pytest.mark.parametrize("case", sorted(BAD_PARAMS))
def test_bad_params_are_named_before_any_work(project, capsys, case):
    overrides, message = BAD_PARAMS[case]
    before = snapshot(project)
    write_params(project, "unused", **{"prompts": SIZES, **overrides})
    code, out = run(project, capsys, "generate", "--iteration", "1")
    assert code == 2 and message in out.err, out.err
    assert "Traceback" not in out.err
    assert snapshot(project) == before


def test_missing_judge_model_is_named(project, capsys):
    write_params(project, "unused", prompts=SIZES, judge={"llm_judge": {"enabled": True, "model": "models/nope"}})
    code, out = run(project, capsys, "judge", "--iteration", "1")
    assert code == 2 and "judge.llm_judge.model: model folder not found: models/nope" in out.err, out.err


JUDGE_STAGE_INPUTS = {
    "an endpoint nobody answers": ({"llm_judge": {"endpoint": {"base_url": "http://127.0.0.1:9/v1", "model": "m",
                                                               "timeout_s": 0.5}}},
                                   "judge.llm_judge.endpoint.base_url: cannot reach the judge server at http://127.0.0.1:9/v1/models"),
    "a labels file with bad rows": ({"calibration": {"labels": "labels.jsonl"}}, "labels.jsonl:2:"),
}


@pytest.mark.parametrize("case", sorted(JUDGE_STAGE_INPUTS))
def test_bad_judge_inputs_are_named_when_the_stage_starts_and_lose_nothing(project, capsys, case):
    (project / "labels.jsonl").write_text('{"prompt": "Hi.", "response": "Hello.", "label": true}\n'
                                          '{"prompt": "Hi.", "response": "Hello.", "label": "maybe"}\n')
    before = snapshot(project)
    judge, message = JUDGE_STAGE_INPUTS[case]
    write_params(project, "unused", prompts=SIZES, judge=judge)
    code, out = run(project, capsys, "judge", "--iteration", "1")
    assert code == 2 and message in out.err, out.err
    assert "Traceback" not in out.err
    assert snapshot(project) == before
