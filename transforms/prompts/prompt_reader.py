"""Reads a user's prompt file (JSONL, CSV/TSV or Parquet) into prompt records, or fails naming file, line and reason.

Each record needs `prompt` (a string) or `messages` (a list of {role, content}); it may carry
`prompt_id`, `instruction_ids` and `kwargs` (a list of objects, or of JSON strings, one per id), and
`metadata`, an object of its own fields that custom judges read (e.g. a reference answer).
A record in the official IFEval form (the `input_data.jsonl` of google-research/instruction_following_eval:
`key`, `prompt`, `instruction_id_list`, `kwargs`) is read as it is: `key` is its prompt_id and
`instruction_id_list` its instruction_ids. In either form, null values in a kwargs object are dropped,
as IFEval's evaluation drops them (Hugging Face's copy of the data lists every argument, unset ones null).
Text may mix any scripts, but control characters (other than tab and newline) and the invisible
bidirectional-override characters that can hide text from a reviewer are refused.

Files are read as common tools save them: UTF-8 with or without a byte-order mark, UTF-16 with its
byte-order mark (Excel's "Unicode text"), Windows line endings, blank lines anywhere. A CSV file
has a header row naming the same fields; its `messages`, `instruction_ids` and `kwargs` cells hold
JSON, empty optional cells are absent fields, and its delimiter (comma, semicolon or tab) is the one
its header uses. A bad file is refused whole, listing every bad record (up to MAX_LISTED).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import unicodedata
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

from transforms.prompts.prompt_builder import prompt_id_for

ROLES = ("system", "user", "assistant")
ALLOWED_CONTROLS = "\t\n\r"
BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
MAX_LISTED = 20  # bad records named in one error; the rest are counted
CSV_DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab"}
CSV_JSON_COLUMNS = ("messages", "instruction_ids", "kwargs", "metadata", "instruction_id_list")
# The official IFEval field names, and ours; a record with `instruction_id_list` is in IFEval's form.
IFEVAL_FIELDS = {"key": "prompt_id", "instruction_id_list": "instruction_ids"}
# A header without a delimiter is a one-column file: its rows are never split. NUL bytes are
# refused before parsing, so NUL as the delimiter only parses the quoting.
ONE_COLUMN = "\0"


class PromptFileError(ValueError):
    def __init__(self, path, line: int | None, reason: str):
        self.line = line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")


def _raise_all(path, errors: list[PromptFileError]) -> None:
    """One error for every bad record: a single one as it is, several listed in line order up to MAX_LISTED."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        errors = sorted(errors, key=lambda e: e.line or 0)
        listed = [f"  {e}" for e in errors[:MAX_LISTED]]
        if len(errors) > MAX_LISTED:
            listed.append(f"  ... and {len(errors) - MAX_LISTED} more")
        raise PromptFileError(path, None, f"{len(errors)} bad records, so none was read:\n" + "\n".join(listed))


def _check_text(text: str, field: str, path, line) -> None:
    for offset, char in enumerate(text):
        if (unicodedata.category(char) == "Cc" and char not in ALLOWED_CONTROLS) or char in BIDI_CONTROLS:
            raise PromptFileError(path, line, f"{field} contains the control character U+{ord(char):04X} at "
                                              f"offset {offset}; remove it")


def _messages(record: dict, path, line) -> list[dict]:
    if "messages" in record:
        msgs = record["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise PromptFileError(path, line, "'messages' must be a non-empty list")
        for i, m in enumerate(msgs):
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise PromptFileError(path, line, f"messages[{i}] must be {{role: {'|'.join(ROLES)}, content: string}}")
        if msgs[-1]["role"] != "user":
            raise PromptFileError(path, line, "the last message must be the user's")
        if not msgs[-1]["content"].strip():
            raise PromptFileError(path, line, "the user message is empty")
        for i, m in enumerate(msgs):
            _check_text(m["content"], f"messages[{i}].content", path, line)
        return [{"role": m["role"], "content": m["content"]} for m in msgs]
    if "prompt" in record:
        if not isinstance(record["prompt"], str):
            raise PromptFileError(path, line, f"'prompt' must be a string, got {type(record['prompt']).__name__}")
        if not record["prompt"].strip():
            raise PromptFileError(path, line, "'prompt' is empty")
        _check_text(record["prompt"], "'prompt'", path, line)
        return [{"role": "user", "content": record["prompt"]}]
    raise PromptFileError(path, line, "needs a 'prompt' or 'messages' field")


def _constraints(record: dict, prompt_text: str, path, line) -> tuple[list[str], list[str]]:
    from transforms.judges.ifeval_verifier import build_checker

    ids = record.get("instruction_ids") or []
    kwargs = record.get("kwargs") or [{} for _ in ids]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise PromptFileError(path, line, "'instruction_ids' must be a list of strings")
    if not isinstance(kwargs, list) or len(kwargs) != len(ids):
        raise PromptFileError(path, line, f"'kwargs' must be a list with one entry per instruction id ({len(ids)})")
    parsed = []
    for i, kw in enumerate(kwargs):
        if isinstance(kw, str):
            try:
                kw = json.loads(kw)
            except json.JSONDecodeError as exc:
                raise PromptFileError(path, line, f"kwargs[{i}] is not valid JSON ({exc.msg})") from exc
        if kw is None:
            kw = {}
        if not isinstance(kw, dict):
            raise PromptFileError(path, line, f"kwargs[{i}] must be an object")
        kw = {name: value for name, value in kw.items() if value is not None}
        try:
            build_checker(ids[i], kw, prompt_text)
        except ValueError as exc:
            raise PromptFileError(path, line, str(exc)) from exc
        parsed.append(json.dumps(kw, sort_keys=True))
    return ids, parsed


def _from_ifeval(record: dict, path, line) -> dict:
    """A record in the official IFEval form, in our field names (its integer `key` as a string); others as they are."""
    if "instruction_id_list" not in record:
        return record
    for theirs, ours in IFEVAL_FIELDS.items():
        if theirs in record and ours in record:
            raise PromptFileError(path, line, f"has both IFEval's {theirs!r} and {ours!r}; use one")
    key = record.get("key")
    if key is not None and (isinstance(key, bool) or not isinstance(key, (int, str))):
        raise PromptFileError(path, line, f"'key' must be an integer or a string, got {type(key).__name__}")
    record = {IFEVAL_FIELDS.get(name, name): value for name, value in record.items()}
    if isinstance(key, int):
        record["prompt_id"] = str(key)
    return record


def _to_prompt(record, path, line, split: str, source: str) -> dict:
    if not isinstance(record, dict):
        raise PromptFileError(path, line, f"expected a JSON object, got {type(record).__name__}")
    record = _from_ifeval(record, path, line)
    messages = _messages(record, path, line)
    ids, kwargs = _constraints(record, messages[-1]["content"], path, line)
    prompt_id = record.get("prompt_id")
    if prompt_id is None:
        prompt_id = prompt_id_for(split, json.dumps(messages, sort_keys=True))
    elif not isinstance(prompt_id, str) or not prompt_id.strip():
        raise PromptFileError(path, line, "'prompt_id' must be a non-empty string")
    else:
        _check_text(prompt_id, "'prompt_id'", path, line)
    metadata = record.get("metadata", {})
    if not isinstance(metadata, dict):
        raise PromptFileError(path, line, f"'metadata' must be an object, got {type(metadata).__name__}")
    return {"prompt_id": prompt_id, "messages": messages, "instruction_ids": ids, "kwargs": kwargs,
            "source": source, "split": split, "metadata": json.dumps(metadata, sort_keys=True)}


def _utf16_lines(path: Path, raw: bytes) -> list[str]:
    try:
        text = raw.decode("utf-16")  # reads the byte-order mark for the byte order, and drops it
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].decode("utf-16", errors="replace").count("\n") + 1
        raise PromptFileError(path, line, f"invalid UTF-16 at byte {exc.start} of the file") from exc
    return text.split("\n")


def _utf8_problem(line: bytes) -> str:
    if b"\0" in line:
        return "contains NUL bytes (a UTF-16 file needs its byte-order mark; or save it as UTF-8)"
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"invalid UTF-8 at byte {exc.start}"
    return ""


def _decoded_lines(path: Path) -> tuple[list[str], list[PromptFileError]]:
    """The file's lines (each keeps a Windows "\\r"), and an error for each line that does not decode (read as "")."""
    raw = path.read_bytes()
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _utf16_lines(path, raw), []
    lines, errors = [], []
    for number, line in enumerate(raw.removeprefix(codecs.BOM_UTF8).split(b"\n"), start=1):
        problem = _utf8_problem(line)
        if problem:
            errors.append(PromptFileError(path, number, problem))
        lines.append("" if problem else line.decode("utf-8"))
    return lines, errors


def _jsonl_records(path: Path):
    lines, errors = _decoded_lines(path)
    for error in errors:
        yield error.line, error
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as exc:
            yield number, PromptFileError(path, number, f"invalid JSON ({exc.msg} at column {exc.colno})")


def _csv_delimiter(path: Path, line: int, header: str) -> str:
    """Field names hold no delimiter, so the header shows which one the file uses (Excel writes ';'
    where ',' is the decimal mark)."""
    found = [d for d in CSV_DELIMITERS if d in header]
    if len(found) > 1:
        raise PromptFileError(path, line, f"the header mixes delimiters ({', '.join(CSV_DELIMITERS[d] for d in found)}); "
                                          "use one")
    return found[0] if found else ONE_COLUMN


def _csv_header(path: Path, line: int, row: list[str]) -> list[str]:
    names = [cell.strip() for cell in row]
    if "prompt" not in names and "messages" not in names:
        raise PromptFileError(path, line, f"the header row names no 'prompt' or 'messages' column (it has {names})")
    repeated = sorted({n for n in names if n and names.count(n) > 1})
    if repeated:
        raise PromptFileError(path, line, f"the header row repeats the column(s) {', '.join(repeated)}")
    return names


def _csv_record(path: Path, line: int, header: list[str], row: list[str]) -> dict | PromptFileError:
    if len(row) != len(header):
        return PromptFileError(path, line, f"{len(row)} fields where the header has {len(header)} (quote a field "
                                           "that holds the delimiter)")
    # An empty optional cell is an absent field; an empty prompt stays, to be named as empty.
    record = {name: cell for name, cell in zip(header, row) if name and (cell or name == "prompt")}
    for name in CSV_JSON_COLUMNS:
        if name in record:
            try:
                record[name] = json.loads(record[name])
            except json.JSONDecodeError as exc:
                return PromptFileError(path, line, f"the {name} cell is not valid JSON ({exc.msg} at column {exc.colno})")
    return record


def _csv_rows(path: Path, text: str, delimiter: str):
    """(line the record starts on, its cells or a PromptFileError), skipping blank rows."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            hint = "; a quoted field opened here never closes" if "unexpected end of data" in str(exc) else ""
            yield start, PromptFileError(path, start, f"malformed CSV ({exc}){hint}")
            continue
        if any(cell.strip() for cell in row):
            yield start, row


def _csv_records(path: Path, delimiter: str | None = None):
    lines, errors = _decoded_lines(path)
    _raise_all(path, errors)  # a line that did not decode could hide a quote: parse nothing
    header_at = next((i for i, text in enumerate(lines) if text.strip()), None)
    if header_at is None:
        return
    delimiter = delimiter or _csv_delimiter(path, header_at + 1, lines[header_at])
    header = None
    for number, row in _csv_rows(path, "\n".join(lines), delimiter):
        if isinstance(row, PromptFileError):
            yield number, row
        elif header is None:
            header = _csv_header(path, number, row)
        else:
            yield number, _csv_record(path, number, header, row)


def _parquet_records(path: Path):
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for corrupt files
        raise PromptFileError(path, None, f"not a readable Parquet file ({exc})") from exc
    for number, record in enumerate(table.to_pylist(), start=1):
        yield number, record


def _unique_prompt(record, path: Path, line: int, split: str, first_line: dict[str, int]) -> dict:
    """The prompt of one record (or the reader's error for it), its id not taken by an earlier one."""
    if isinstance(record, PromptFileError):
        raise record
    prompt = _to_prompt(record, path, line, split, source=path.name)
    first = first_line.setdefault(prompt["prompt_id"], line)
    if first != line:
        raise PromptFileError(path, line, f"duplicate prompt_id {prompt['prompt_id']!r} (first on line {first})")
    return prompt


Reader = Callable[[Path], Iterator[tuple[int, Any]]]  # a file -> (line, record or the PromptFileError for it)
READERS: dict[str, Reader] = {".jsonl": _jsonl_records, ".json": _jsonl_records, ".csv": _csv_records,
                              ".tsv": partial(_csv_records, delimiter="\t"), ".parquet": _parquet_records}


def _records(path: Path):
    """(line, record or the PromptFileError for it) of every record in the file, read by its format."""
    if not path.is_file():
        raise PromptFileError(path, None, "file not found")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise PromptFileError(path, None, f"unsupported format: use {', '.join(READERS)}")
    return reader(path)


def read_prompt_file(path: str | Path, split: str = "train") -> list[dict]:
    path = Path(path)
    prompts, errors, first_line = [], [], dict[str, int]()
    for number, record in _records(path):
        try:
            prompts.append(_unique_prompt(record, path, number, split, first_line))
        except PromptFileError as exc:
            errors.append(exc)
    _raise_all(path, errors)
    if not prompts:
        raise PromptFileError(path, None, "no prompts in file")
    return sorted(prompts, key=lambda p: p["prompt_id"])


def read_records_with_prompts(path: str | Path, split: str, fields: Callable[[dict, Path, int], Any]
                              ) -> list[tuple[dict, Any]]:
    """(prompt, own fields) of every record of a file whose records are a prompt plus fields of their own (e.g.
    a labels file): the prompt read as `read_prompt_file` reads it, the rest by `fields(record, path, line)`,
    which raises PromptFileError for a bad record. Prompts may repeat; records stay in file order. A bad
    file is refused whole, listing every bad record."""
    path = Path(path)
    rows, errors = [], []
    for number, record in _records(path):
        try:
            if isinstance(record, PromptFileError):
                raise record
            prompt = _to_prompt(record, path, number, split, source=path.name)
            rows.append((prompt, fields(record, path, number)))
        except PromptFileError as exc:
            errors.append(exc)
    _raise_all(path, errors)
    if not rows:
        raise PromptFileError(path, None, "no records in file")
    return rows
