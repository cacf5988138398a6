"""Reads a user's prompt file (JSONL or Parquet) into prompt records, or fails naming file, line and reason.

Each record needs `prompt` (a string) or `messages` (a list of {role, content}); it may carry
`prompt_id`, `instruction_ids` and `kwargs` (a list of objects, or of JSON strings, one per id).
Text may mix any scripts, but control characters (other than tab and newline) and the invisible
bidirectional-override characters that can hide text from a reviewer are refused.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

from transforms.prompts.prompt_builder import prompt_id_for

ROLES = ("system", "user", "assistant")
ALLOWED_CONTROLS = "\t\n\r"
BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class PromptFileError(ValueError):
    def __init__(self, path, line: int | None, reason: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")


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
        try:
            build_checker(ids[i], kw, prompt_text)
        except ValueError as exc:
            raise PromptFileError(path, line, str(exc)) from exc
        parsed.append(json.dumps(kw, sort_keys=True))
    return ids, parsed


def _to_prompt(record, path, line, split: str, source: str) -> dict:
    if not isinstance(record, dict):
        raise PromptFileError(path, line, f"expected a JSON object, got {type(record).__name__}")
    messages = _messages(record, path, line)
    ids, kwargs = _constraints(record, messages[-1]["content"], path, line)
    prompt_id = record.get("prompt_id")
    if prompt_id is None:
        prompt_id = prompt_id_for(split, json.dumps(messages, sort_keys=True))
    elif not isinstance(prompt_id, str) or not prompt_id.strip():
        raise PromptFileError(path, line, "'prompt_id' must be a non-empty string")
    else:
        _check_text(prompt_id, "'prompt_id'", path, line)
    return {"prompt_id": prompt_id, "messages": messages, "instruction_ids": ids, "kwargs": kwargs,
            "source": source, "split": split}


def _jsonl_records(path: Path):
    raw = path.read_bytes()
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PromptFileError(path, number, f"invalid UTF-8 at byte {exc.start}") from exc
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as exc:
            raise PromptFileError(path, number, f"invalid JSON ({exc.msg} at column {exc.colno})") from exc


def _parquet_records(path: Path):
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for corrupt files
        raise PromptFileError(path, None, f"not a readable Parquet file ({exc})") from exc
    for number, record in enumerate(table.to_pylist(), start=1):
        yield number, record


def read_prompt_file(path: str | Path, split: str = "train") -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(path, None, "file not found")
    if path.suffix == ".parquet":
        records = _parquet_records(path)
    elif path.suffix in (".jsonl", ".json"):
        records = _jsonl_records(path)
    else:
        raise PromptFileError(path, None, "unsupported format: use .jsonl or .parquet")
    prompts, seen = [], {}
    for number, record in records:
        prompt = _to_prompt(record, path, number, split, source=path.name)
        if prompt["prompt_id"] in seen:
            first = seen[prompt["prompt_id"]]
            raise PromptFileError(path, number, f"duplicate prompt_id {prompt['prompt_id']!r} (first on line {first})")
        seen[prompt["prompt_id"]] = number
        prompts.append(prompt)
    if not prompts:
        raise PromptFileError(path, None, "no prompts in file")
    return sorted(prompts, key=lambda p: p["prompt_id"])
