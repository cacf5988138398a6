"""Property-based tests: every record schema round-trips any values losslessly and byte-deterministically,
and the prompt reader keeps any valid record exactly and names the line of any invalid one."""

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import records
from transforms.io.parquet_io import table_bytes
from transforms.prompts.prompt_reader import ALLOWED_CONTROLS, BIDI_CONTROLS, PromptFileError, read_prompt_file

SCHEMAS = {name: getattr(records, name) for name in
           ("PROMPT", "CANDIDATE", "JUDGMENT", "SHARD_ROW", "REJECTED_ROW", "PAIR", "EVAL_RESULT")}
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)  # any Unicode but lone surrogates


def values_of(dtype: pa.DataType):
    if pa.types.is_string(dtype):
        return TEXT
    if pa.types.is_integer(dtype):
        bits = dtype.bit_width - (1 if pa.types.is_signed_integer(dtype) else 0)
        return st.integers(-(2**bits) if pa.types.is_signed_integer(dtype) else 0, 2**bits - 1)
    if pa.types.is_floating(dtype):
        return st.floats(allow_nan=False, width=dtype.bit_width)
    if pa.types.is_boolean(dtype):
        return st.booleans()
    if pa.types.is_list(dtype):
        return st.lists(values_of(dtype.value_type), max_size=3)
    if pa.types.is_struct(dtype):
        return st.fixed_dictionaries({f.name: values_of(f.type) for f in dtype})
    raise NotImplementedError(f"no strategy for {dtype}")


def rows_of(schema: pa.Schema):
    row = st.fixed_dictionaries({f.name: (st.none() | values_of(f.type)) if f.nullable else values_of(f.type)
                                 for f in schema})
    return st.lists(row, max_size=5)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_schema_round_trips_any_rows(name, data):
    schema = SCHEMAS[name]
    rows = data.draw(rows_of(schema))
    payload = table_bytes(rows, schema)
    assert payload == table_bytes(rows, schema)  # same rows, same bytes
    table = pq.read_table(io.BytesIO(payload))
    assert table.schema.equals(schema, check_metadata=False)
    assert table.to_pylist() == rows


FORBIDDEN = sorted({chr(c) for c in range(0x20) if chr(c) not in ALLOWED_CONTROLS} | {"\x7f"} | BIDI_CONTROLS)
PROMPT_TEXT = st.text(st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="".join(BIDI_CONTROLS))
                      | st.sampled_from(list(ALLOWED_CONTROLS)), min_size=1, max_size=60).filter(str.strip)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(PROMPT_TEXT, min_size=1, max_size=6, unique=True))
def test_valid_prompts_are_kept_exactly(tmp_path, texts):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt_id": f"p{i}", "prompt": t}) + "\n" for i, t in enumerate(texts)))
    rows = read_prompt_file(path)
    assert {r["prompt_id"]: r["messages"][-1]["content"] for r in rows} == {f"p{i}": t for i, t in enumerate(texts)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=PROMPT_TEXT, bad=st.sampled_from(FORBIDDEN), where=st.integers(0, 60), line=st.integers(1, 4))
def test_a_control_character_is_named_with_its_line(tmp_path, text, bad, where, line):
    poisoned = text[:where] + bad + text[where:]
    records_ = [{"prompt": "A fine prompt number %d." % i} for i in range(line - 1)] + [{"prompt": poisoned}]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records_))
    with pytest.raises(PromptFileError, match=rf"prompts.jsonl:{line}: 'prompt' contains the control character "
                                              rf"U\+{ord(bad):04X}"):
        read_prompt_file(path)
