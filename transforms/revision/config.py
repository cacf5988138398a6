"""The `revise:` params section: whether failed answers get a second turn with the checker's feedback, and how
many."""

from __future__ import annotations

from dataclasses import dataclass

from transforms.settings import require_at_least_one


@dataclass(frozen=True)
class ReviseConfig:
    enabled: bool = False  # curate first revises failed answers with the checker's feedback (off: nothing runs)
    candidates_per_failure: int = 1  # revised answers generated per failed answer
    max_per_prompt: int = 1  # failed answers revised per prompt (the highest scored first)
    only_unsolved: bool = True  # revise only prompts none of whose answers passed

    def validate(self, where: str) -> None:
        require_at_least_one(self, where, "candidates_per_failure", "max_per_prompt")
