"""Curated records -> TRL's conversational formats: prompt-completion for SFT (the loss falls on the
answer only) and prompt/chosen/rejected for DPO."""

from __future__ import annotations


def _messages(messages) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def to_prompt_completion(row: dict) -> dict:
    return {"prompt": _messages(row["messages"]), "completion": [{"role": "assistant", "content": row["text"]}]}


def to_preference(pair: dict) -> dict:
    return {"prompt": _messages(pair["prompt"]), "chosen": _messages(pair["chosen"]),
            "rejected": _messages(pair["rejected"])}
