import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transforms.prompts.prompt_reader import PromptFileError, read_prompt_file


def write(tmp_path, text: str | bytes, name="prompts.jsonl"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_reads_prompt_and_messages_with_constraints(tmp_path):
    path = write(tmp_path, "\n".join([
        json.dumps({"prompt": "Say hi.", "instruction_ids": ["punctuation:no_comma"], "kwargs": [{}]}),
        "",
        json.dumps({"prompt_id": "p2", "messages": [{"role": "user", "content": "List fruit."}],
                    "instruction_ids": ["detectable_format:number_bullet_lists"], "kwargs": ['{"num_bullets": 3}']}),
    ]))
    rows = read_prompt_file(path)
    assert len(rows) == 2
    by_id = {r["prompt_id"]: r for r in rows}
    assert by_id["p2"]["kwargs"] == ['{"num_bullets": 3}']
    assert all(r["split"] == "train" and r["messages"][-1]["role"] == "user" for r in rows)


@pytest.mark.parametrize("line, reason", [
    ('{"prompt": "a"', "invalid JSON"),
    ('["not", "an", "object"]', "expected a JSON object"),
    ('{"text": "no prompt field"}', "needs a 'prompt' or 'messages'"),
    ('{"prompt": 42}', "'prompt' must be a string"),
    ('{"prompt": "   "}', "'prompt' is empty"),
    ('{"messages": [{"role": "robot", "content": "x"}]}', "messages[0]"),
    ('{"prompt": "a", "instruction_ids": ["no:such_check"]}', "unknown instruction id"),
    ('{"prompt": "a", "instruction_ids": ["detectable_format:number_bullet_lists"], "kwargs": [{"bullets": 3}]}', "bad kwargs"),
    ('{"prompt": "a", "instruction_ids": ["punctuation:no_comma"], "kwargs": [{}, {}]}', "one entry per instruction"),
])
def test_malformed_line_is_named(tmp_path, line, reason):
    path = write(tmp_path, '{"prompt": "fine"}\n' + line + "\n")
    with pytest.raises(PromptFileError) as err:
        read_prompt_file(path)
    assert f"{path}:2:" in str(err.value)
    assert reason in str(err.value)


def test_invalid_utf8_names_line(tmp_path):
    path = write(tmp_path, b'{"prompt": "ok"}\n{"prompt": "\xff\xfe"}\n')
    with pytest.raises(PromptFileError, match=r":2: invalid UTF-8"):
        read_prompt_file(path)


def test_duplicate_ids_rejected(tmp_path):
    path = write(tmp_path, '{"prompt_id": "x", "prompt": "a"}\n{"prompt_id": "x", "prompt": "b"}\n')
    with pytest.raises(PromptFileError, match=r":2: duplicate prompt_id 'x' \(first on line 1\)"):
        read_prompt_file(path)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file_fails_clearly(tmp_path, content):
    with pytest.raises(PromptFileError, match="no prompts in file"):
        read_prompt_file(write(tmp_path, content))


def test_parquet_input_and_bad_suffix(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist([{"prompt": "Hello there."}, {"prompt": "Bye."}]), path)
    assert len(read_prompt_file(path)) == 2
    with pytest.raises(PromptFileError, match="unsupported format"):
        read_prompt_file(write(tmp_path, "x", name="p.csv"))
    with pytest.raises(PromptFileError, match="not a readable Parquet"):
        read_prompt_file(write(tmp_path, "garbage", name="bad.parquet"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=300))
def test_random_bytes_end_in_a_clean_error_or_prompts(tmp_path, payload):
    path = write(tmp_path, payload)
    try:
        rows = read_prompt_file(path)
    except PromptFileError as exc:
        assert str(exc).startswith(str(path))
    else:
        assert rows and all(r["messages"][-1]["content"].strip() for r in rows)
