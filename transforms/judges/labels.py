"""Reads a labels file (`judge.calibration.labels`): answers a person or a trusted judge labeled good or
bad, against which the judges are calibrated when no verifier can label the candidates.

Each row is a prompt as in a prompt file (`prompt` or `messages`, optional `instruction_ids`, `kwargs`
and `metadata`, the object custom judges read, e.g. a reference answer), plus `response`, the answer,
and `label`: true or false (1 or 0; in a CSV cell also "true"/"false", any case). The prompt part is
read by transforms/prompts/prompt_reader.py, so a labels file has the formats, encodings and CSV
handling of a prompt file. A prompt may have many rows. A file with bad rows is refused whole, each
named by file:line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transforms.prompts.prompt_reader import PromptFileError, read_records_with_prompts

TRUE, FALSE = ("true", "1"), ("false", "0")
SPLIT = "labels"  # the split a row's prompt_id is derived with, when the row names none


@dataclass(frozen=True)
class LabeledAnswer:
    line: int  # where the row starts in its file
    prompt: dict  # a prompt record, as prompt files give it
    response: str
    label: bool


def label_of(value, path: Path, line: int) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE + FALSE:
        return value.strip().lower() in TRUE
    raise PromptFileError(path, line, f"'label' must be true or false (or 1 or 0), got {value!r}")


def _answer(record: dict, path: Path, line: int) -> tuple[str, bool]:
    if "response" not in record:
        raise PromptFileError(path, line, "needs a 'response' field (the answer that was labeled)")
    response = record["response"]
    if not isinstance(response, str):
        raise PromptFileError(path, line, f"'response' must be a string, got {type(response).__name__}")
    if not response.strip():
        raise PromptFileError(path, line, "'response' is empty")
    if "label" not in record:
        raise PromptFileError(path, line, "needs a 'label' field (true or false)")
    return response, label_of(record["label"], path, line)


def read_labels(path: str | Path) -> list[LabeledAnswer]:
    """The file's labeled answers in file order, or a PromptFileError listing every bad row by file:line."""
    rows = read_records_with_prompts(path, SPLIT, lambda record, where, line: (line, *_answer(record, where, line)))
    return [LabeledAnswer(line, prompt, response, label) for prompt, (line, response, label) in rows]
