import codecs
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
        read_prompt_file(write(tmp_path, "x", name="p.txt"))
    with pytest.raises(PromptFileError, match="not a readable Parquet"):
        read_prompt_file(write(tmp_path, "garbage", name="bad.parquet"))


TEXTS = {"a": "Write about rivers, lakes; and seas.", "b": "Línea uno\nLínea dos — «fin».", "c": 'Say "hi".'}


def jsonl(between: str = "\n") -> str:
    return between.join(json.dumps({"prompt_id": pid, "prompt": text}, ensure_ascii=False) for pid, text in TEXTS.items())


AS_SAVED = {
    "UTF-8 with a byte-order mark (Windows Notepad, Excel)": codecs.BOM_UTF8 + jsonl().encode(),
    "Windows line endings": (jsonl("\r\n") + "\r\n").encode(),
    "a trailing blank line": (jsonl() + "\n\n").encode(),
    "blank lines between records": jsonl("\n\n \r\n\t\n").encode(),
    "UTF-16 LE with a byte-order mark (Notepad 'Unicode')": codecs.BOM_UTF16_LE + (jsonl("\r\n") + "\r\n").encode("utf-16-le"),
    "UTF-16 BE with a byte-order mark": codecs.BOM_UTF16_BE + jsonl().encode("utf-16-be"),
}


def texts_of(rows) -> dict:
    return {r["prompt_id"]: r["messages"][-1]["content"] for r in rows}


@pytest.mark.parametrize("case", sorted(AS_SAVED))
def test_jsonl_as_editors_save_it_reads_every_record_exactly(tmp_path, case):
    assert texts_of(read_prompt_file(write(tmp_path, AS_SAVED[case]))) == TEXTS


# Excel's "CSV UTF-8": byte-order mark, CRLF rows, a cell's own line breaks as LF inside quotes,
# quotes doubled, every row padded to the header's width, an empty row left at the end.
EXCEL_CSV = ("\ufeffprompt_id,prompt,instruction_ids,kwargs\r\n"
             'a,"Write about rivers, lakes; and seas.","[""punctuation:no_comma""]","[{}]"\r\n'
             '\r\n'
             'b,"Línea uno\nLínea dos — «fin».",,\r\n'
             'c,"Say ""hi"".",,\r\n'
             ",,,\r\n")
SEMICOLON_CSV = ('prompt;prompt_id\r\n"Write about rivers, lakes; and seas.";a\r\n'
                 '"Línea uno\nLínea dos — «fin».";b\r\nSay "hi".;c\r\n')  # Excel where ',' is the decimal mark


# Excel's "Unicode text": UTF-16 LE with its byte-order mark, tab-separated (saved as .txt; renamed .tsv).
UNICODE_TEXT = ("prompt_id\tprompt\tinstruction_ids\tkwargs\r\n"
                'a\tWrite about rivers, lakes; and seas.\t"[""punctuation:no_comma""]"\t[{}]\r\n'
                'b\t"Línea uno\nLínea dos — «fin»."\t\t\r\n'
                'c\t"Say ""hi""."\t\t\r\n')


@pytest.mark.parametrize("name, content", [
    ("excel.csv", EXCEL_CSV.encode()),
    ("semicolons.csv", SEMICOLON_CSV.encode()),
    ("unicode-text.tsv", codecs.BOM_UTF16_LE + UNICODE_TEXT.encode("utf-16-le")),
    ("unicode-text.csv", codecs.BOM_UTF16_LE + UNICODE_TEXT.encode("utf-16-le")),  # the tab header picks tab
])
def test_spreadsheet_exports_read_every_record_exactly(tmp_path, name, content):
    rows = read_prompt_file(write(tmp_path, content, name=name))
    assert texts_of(rows) == TEXTS
    assert name == "semicolons.csv" or {r["prompt_id"]: r["instruction_ids"] for r in rows}["a"] == ["punctuation:no_comma"]


def test_a_one_column_csv_never_splits_a_prompt(tmp_path):
    # Without a delimiter in the header there is one column, whatever the export's delimiter was.
    path = write(tmp_path, 'prompt\r\nHello, world; again.\r\n"A quoted, ""odd""\nprompt."\r\n', name="p.csv")
    assert sorted(r["messages"][-1]["content"] for r in read_prompt_file(path)) == [
        'A quoted, "odd"\nprompt.', "Hello, world; again."]


def test_messages_cell_holds_json(tmp_path):
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi, who are you?"}]
    path = write(tmp_path, "messages\n" + '"' + json.dumps(chat).replace('"', '""') + '"\n', name="p.csv")
    assert read_prompt_file(path)[0]["messages"] == chat


@pytest.mark.parametrize("content, message", [
    ("prompt,prompt_id\nHello, world,a\n", ":2: 3 fields where the header has 2"),
    ("prompt,prompt_id\nHello,a\nBye\n", ":3: 1 fields where the header has 2"),
    ('prompt,prompt_id\nHi,a\n"Never closed,b\nc,d\n', ":3: malformed CSV (unexpected end of data); a quoted field "
                                                         "opened here never closes"),
    ('prompt,instruction_ids\nHi,punctuation:no_comma\n', ":2: the instruction_ids cell is not valid JSON"),
    ('prompt,instruction_ids\nHi,"[""no:such_check""]"\n', ":2: unknown instruction id"),
    ("prompt,prompt_id\n,a\n", ":2: 'prompt' is empty"),
    ("text,prompt_id\nHi,a\n", ":1: the header row names no 'prompt' or 'messages' column"),
    ("prompt,prompt\nHi,Ho\n", ":1: the header row repeats the column(s) prompt"),
    ("prompt;prompt_id,source\nHi;a,b\n", ":1: the header mixes delimiters (comma, semicolon)"),
])
def test_bad_csv_is_named_with_the_line_its_record_starts_on(tmp_path, content, message):
    path = write(tmp_path, content, name="p.csv")
    with pytest.raises(PromptFileError) as err:
        read_prompt_file(path)
    assert f"{path}{message}" in str(err.value)


def test_csv_lines_count_a_cell_s_own_line_breaks(tmp_path):
    path = write(tmp_path, 'prompt,prompt_id\r\n"one\ntwo\nthree",a\r\n\r\n,b\r\n', name="p.csv")
    with pytest.raises(PromptFileError, match=r"p\.csv:6: 'prompt' is empty"):
        read_prompt_file(path)


def test_every_bad_line_is_listed_in_one_error_up_to_a_cap(tmp_path):
    good = ['{"prompt_id": "g%d", "prompt": "Fine %d."}' % (i, i) for i in range(3)]
    bad = ['{"prompt": "unclosed', '{"prompt": ""}', '{"text": "x"}'] * 9  # 27 bad lines
    lines = good + ["", '{"prompt_id": "g0", "prompt": "again"}'] + bad  # line 5: a duplicate
    path = write(tmp_path, "\n".join(lines).encode() + b'\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(PromptFileError) as err:
        read_prompt_file(path)
    listed = str(err.value).splitlines()
    assert listed[0] == f"{path}: 29 bad records, so none was read:"
    assert listed[1] == f"  {path}:5: duplicate prompt_id 'g0' (first on line 1)"
    assert listed[2].startswith(f"  {path}:6: invalid JSON") and listed[3] == f"  {path}:7: 'prompt' is empty"
    assert [line.split(":")[1] for line in listed[1:21]] == [str(n) for n in range(5, 25)]  # line order, 20 named
    assert listed[21:] == ["  ... and 9 more"]


def test_two_bad_lines_are_both_named(tmp_path):
    path = write(tmp_path, '{"prompt": 1}\n{"prompt": "ok"}\n{"prompt": "\xff"}\n'.encode("latin-1"))
    with pytest.raises(PromptFileError) as err:
        read_prompt_file(path)
    assert str(err.value).splitlines() == [f"{path}: 2 bad records, so none was read:",
                                           f"  {path}:1: 'prompt' must be a string, got int",
                                           f"  {path}:3: invalid UTF-8 at byte 12"]


def test_bad_utf16_and_utf16_without_its_mark_are_named(tmp_path):
    no_mark = write(tmp_path, '{"prompt": "Hi."}\n'.encode("utf-16-le"), name="a.jsonl")
    with pytest.raises(PromptFileError, match=r"a\.jsonl:1: contains NUL bytes \(a UTF-16 file needs its byte-order mark"):
        read_prompt_file(no_mark)
    odd = write(tmp_path, codecs.BOM_UTF16_LE + '{"prompt": "Hi."}\n{"prompt": "Ho."}'.encode("utf-16-le") + b"x",
                name="b.jsonl")
    with pytest.raises(PromptFileError, match=r"b\.jsonl:2: invalid UTF-16 at byte 72 of the file"):
        read_prompt_file(odd)


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


# Three lines of IFEval's own input_data.jsonl (google-research/instruction_following_eval, Apache-2.0), as
# shipped; the third as Hugging Face's copy (google/IFEval) writes it, every argument listed and unset ones null.
IFEVAL_LINES = [
    {"key": 1000, "prompt": "Write a 300+ word summary of the wikipedia page \"https://en.wikipedia.org/wiki/Raymond_III,"
                            "_Count_of_Tripoli\". Do not use any commas and highlight at least 3 sections that has titles "
                            "in markdown format, for example *highlighted section part 1*, *highlighted section part 2*, "
                            "*highlighted section part 3*.",
     "instruction_id_list": ["punctuation:no_comma", "detectable_format:number_highlighted_sections",
                             "length_constraints:number_words"],
     "kwargs": [{}, {"num_highlights": 3}, {"relation": "at least", "num_words": 300}]},
    {"key": 1040, "prompt": "Write me a resume for Matthias Algiers. Use words with all capital letters to highlight key "
                            "abilities, but make sure that words with all capital letters appear less than 10 times. Wrap "
                            "the entire response with double quotation marks.",
     "instruction_id_list": ["change_case:capital_word_frequency", "change_case:capital_word_frequency",
                             "startend:quotation"],
     "kwargs": [{"capital_relation": "less than", "capital_frequency": 10},
                {"capital_relation": "at least", "capital_frequency": 1}, {}]},
    {"key": 1174, "prompt": "Write a template for a chat bot that takes a user's location and gives them the weather "
                            "forecast. Use the letter o as a keyword in the syntax of the template. The letter o should "
                            "appear at least 6 times.. Your response should contain fewer than 6 sentences. Highlight at "
                            "least 2 text sections, i.e. *highlighted section*.",
     "instruction_id_list": ["keywords:letter_frequency", "length_constraints:number_sentences",
                             "detectable_format:number_highlighted_sections"],
     "kwargs": [{"let_relation": "less than", "letter": "o", "let_frequency": 6, "num_sentences": None,
                 "relation": None, "num_highlights": None, "capital_frequency": None},
                {"let_relation": None, "letter": None, "let_frequency": None, "relation": "less than",
                 "num_sentences": 6, "num_highlights": None},
                {"num_highlights": 2, "relation": None, "num_words": None}]},
]


def test_reads_the_official_ifeval_format_as_it_is(tmp_path):
    path = write(tmp_path, "".join(json.dumps(line) + "\n" for line in IFEVAL_LINES), "input_data.jsonl")
    rows = {r["prompt_id"]: r for r in read_prompt_file(path, split="ifeval")}
    assert sorted(rows) == ["1000", "1040", "1174"]
    assert rows["1040"]["instruction_ids"] == IFEVAL_LINES[1]["instruction_id_list"]
    assert rows["1000"]["messages"] == [{"role": "user", "content": IFEVAL_LINES[0]["prompt"]}]
    assert [json.loads(k) for k in rows["1000"]["kwargs"]] == IFEVAL_LINES[0]["kwargs"]
    # nulls dropped, as IFEval's evaluation drops them
    assert [json.loads(k) for k in rows["1174"]["kwargs"]] == [
        {"let_relation": "less than", "letter": "o", "let_frequency": 6},
        {"relation": "less than", "num_sentences": 6}, {"num_highlights": 2}]
    assert all(r["split"] == "ifeval" and r["source"] == "input_data.jsonl" for r in rows.values())


@pytest.mark.parametrize("line, reason", [
    ({"key": 1, "prompt_id": "p1", "prompt": "a", "instruction_id_list": []}, "both IFEval's 'key' and 'prompt_id'"),
    ({"key": 1, "prompt": "a", "instruction_id_list": ["punctuation:no_comma"], "instruction_ids": []},
     "both IFEval's 'instruction_id_list' and 'instruction_ids'"),
    ({"key": [1], "prompt": "a", "instruction_id_list": []}, "'key' must be an integer or a string"),
    ({"key": 2, "prompt": "a", "instruction_id_list": ["no:such_check"], "kwargs": [{}]}, "unknown instruction id"),
])
def test_a_bad_ifeval_record_is_named_with_its_line(tmp_path, line, reason):
    path = write(tmp_path, json.dumps(IFEVAL_LINES[0]) + "\n" + json.dumps(line) + "\n", "input_data.jsonl")
    with pytest.raises(PromptFileError, match=rf"input_data.jsonl:2: .*{reason}"):
        read_prompt_file(path)
