"""Curated records -> TRL's conversational formats: prompt-completion for SFT (the loss falls on the
answer only) and prompt/chosen/rejected for DPO; and what fitting them into `max_length` tokens cuts,
counted rather than silent."""

from __future__ import annotations

from dataclasses import dataclass

IGNORED = -100  # the label of a token that carries no loss (the prompt's)


def _messages(messages) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def to_prompt_completion(row: dict) -> dict:
    return {"prompt": _messages(row["messages"]), "completion": [{"role": "assistant", "content": row["text"]}]}


def to_preference(pair: dict) -> dict:
    return {"prompt": _messages(pair["prompt"]), "chosen": _messages(pair["chosen"]),
            "rejected": _messages(pair["rejected"])}


@dataclass(frozen=True)
class Truncation:
    """What `max_length` cost: rows trained on with their end cut off, the tokens cut from them, and
    rows dropped because no answer token was left."""

    rows: int = 0
    tokens: int = 0
    dropped_rows: int = 0

    def summary(self) -> dict:
        return {"truncated_rows": self.rows, "truncated_tokens": self.tokens, "dropped_rows": self.dropped_rows}


def truncate_completions(dataset, max_length: int):
    """(dataset, Truncation): tokenized SFT rows (`input_ids`, `labels`) cut to their first
    `max_length` tokens, as TRL would, less the rows with no supervised token left."""
    lengths = [len(ids) for ids in dataset["input_ids"]]
    kept = [i for i, labels in enumerate(dataset["labels"]) if any(t != IGNORED for t in labels[:max_length])]
    cut = [lengths[i] - max_length for i in kept if lengths[i] > max_length]
    truncated = dataset.select(kept).map(
        lambda row: {"input_ids": row["input_ids"][:max_length], "labels": row["labels"][:max_length]},
        desc=f"Truncating to max_length {max_length}")
    return truncated, Truncation(len(cut), sum(cut), len(lengths) - len(kept))


def preference_truncation(dataset, max_length: int, pairs: int) -> Truncation:
    """What TRL's DPO cuts from tokenized pairs (`prompt_ids`, `chosen_ids`, `rejected_ids`): each of
    prompt+chosen and prompt+rejected keeps its first `max_length` tokens, and TRL has already dropped
    the pairs whose prompt alone fills them (`pairs` is the count before that)."""
    cuts = []
    for prompt, chosen, rejected in zip(dataset["prompt_ids"], dataset["chosen_ids"], dataset["rejected_ids"],
                                        strict=True):
        cuts.append(sum(max(0, len(prompt) + len(answer) - max_length) for answer in (chosen, rejected)))
    return Truncation(sum(c > 0 for c in cuts), sum(cuts), pairs - len(cuts))
