"""Shard rows -> TRL's conversational prompt-completion format (the loss then falls on the answer only)."""

from __future__ import annotations


def to_prompt_completion(row: dict) -> dict:
    return {
        "prompt": [{"role": m["role"], "content": m["content"]} for m in row["messages"]],
        "completion": [{"role": "assistant", "content": row["text"]}],
    }
