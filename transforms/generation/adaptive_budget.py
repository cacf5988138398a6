"""The adaptive sampling budget (`generate.budget: adaptive`): how many more candidates each prompt gets in
each round after the first. Pure functions; the generate stage runs the rounds.

Budget-neutral, so that variants compare fairly: over all rounds a run makes at most
`generate.candidates_per_prompt` x prompts candidates, as uniform sampling does. Round 1 samples
`first_round` per prompt. Each later round gets an equal share of what is left (what a round could not
spend rolls over to the next) and gives it to the prompts with no passing candidate so far, each in
proportion to its difficulty: 1 - the pass rate so far of its hardest instruction type (the one its
candidates followed least often), at least MIN_DIFFICULTY so no unsolved prompt starves. No prompt gets
more than `max_candidates_per_prompt` over all rounds.

Candidates are apportioned one at a time by highest averages (Sainte-Lague: the next goes to the prompt
with the largest difficulty / (2 x given this round + 1)); a tie goes to the prompt with fewer candidates
so far (so equal prompts end even), then by a seeded hash of the prompt id, so the result does not depend
on the order prompts or candidates come in.

A prompt without constraints cannot be scored: among prompts that can, it gets nothing after round 1 (the
judge policy rejects its answers as unverifiable anyway); a task without constraints at all spreads the
budget uniformly (the stage says so in its log).
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Protocol

from transforms.settings import require

BUDGETS = ("uniform", "adaptive")  # generate.budget
ADAPTIVE = "adaptive"
MIN_DIFFICULTY = 0.1  # the weight of an unsolved prompt whose types all pass: it still gets a share


@dataclass(frozen=True)
class AdaptiveConfig:
    first_round: int = 2  # candidates per prompt in round 1 (fewer than generate.candidates_per_prompt)
    rounds: int = 2  # rounds after the first; each spends an equal share of what is left of the budget
    max_candidates_per_prompt: int = 16  # no prompt gets more than this over all rounds

    def validate(self, where: str) -> None:
        require(self.first_round >= 1, f"{where}.first_round must be at least 1")
        require(self.rounds >= 1, f"{where}.rounds must be at least 1")
        require(self.max_candidates_per_prompt >= self.first_round,
                f"{where}.max_candidates_per_prompt must be at least {where}.first_round")

    def check_budget(self, candidates_per_prompt: int, where: str) -> None:
        """The rounds need a budget to spend and room to spend it in."""
        require(self.first_round < candidates_per_prompt,
                f"{where}.first_round ({self.first_round}) must be below generate.candidates_per_prompt "
                f"({candidates_per_prompt}), or no budget is left for the later rounds")
        require(self.max_candidates_per_prompt >= candidates_per_prompt,
                f"{where}.max_candidates_per_prompt ({self.max_candidates_per_prompt}) must be at least "
                f"generate.candidates_per_prompt ({candidates_per_prompt})")


@dataclass(frozen=True)
class PromptState:
    """What the rounds so far tell about one prompt."""

    instruction_ids: tuple[str, ...]
    sampled: int  # its candidates so far; a later round's sample indexes start here
    solved: bool  # one of them passed the verifier


class CheckResult(Protocol):
    """A judge's result as the rounds read it: `passed`, and detail["strict"] aligned with the prompt's instruction_ids."""

    @property
    def passed(self) -> bool: ...

    @property
    def detail(self) -> dict: ...


Check = Callable[[dict, dict], CheckResult]  # (candidate, prompt) -> the verifier's result


def score_rounds(prompts: list[dict], candidates: list[dict], check: Check) -> tuple[dict[str, PromptState],
                                                                                          dict[str, float]]:
    """Each prompt's state, and {instruction type: the share of its checks that candidates followed}, from the
    candidates so far. `check` is the verifier; prompts without constraints are not checked."""
    by_id = {p["prompt_id"]: p for p in prompts}
    sampled, solved, followed, checked = Counter[str](), set[str](), Counter[str](), Counter[str]()
    for candidate in candidates:
        prompt = by_id[candidate["prompt_id"]]
        sampled[prompt["prompt_id"]] += 1
        if not prompt["instruction_ids"]:
            continue
        result = check(candidate, prompt)
        if result.passed:
            solved.add(prompt["prompt_id"])
        strict = result.detail.get("strict") or [False] * len(prompt["instruction_ids"])
        for instruction_id, ok in zip(prompt["instruction_ids"], strict, strict=True):
            checked[instruction_id] += 1
            followed[instruction_id] += bool(ok)
    states = {pid: PromptState(tuple(p["instruction_ids"]), sampled[pid], pid in solved) for pid, p in by_id.items()}
    return states, {t: followed[t] / checked[t] for t in sorted(checked)}


def difficulty(instruction_ids: tuple[str, ...], pass_rates: dict[str, float]) -> float:
    if not instruction_ids:
        return 1.0
    return max(MIN_DIFFICULTY, 1.0 - min(pass_rates.get(t, 0.0) for t in instruction_ids))


def round_budget(total: int, spent: int, rounds_left: int) -> int:
    """An equal share of what is left for each of the `rounds_left` rounds (the last takes the rest)."""
    return max(total - spent, 0) // rounds_left


def _tie_break(seed: int, generation_round: int, prompt_id: str) -> str:
    return hashlib.sha256(f"{seed}\x1f{generation_round}\x1f{prompt_id}".encode()).hexdigest()


def allocate(states: dict[str, PromptState], pass_rates: dict[str, float], budget: int, cap: int, seed: int,
             generation_round: int) -> dict[str, int]:
    """{prompt_id: candidates it gets this round}, at most `budget` in all, for the unsolved prompts below `cap`;
    prompts that get none are left out."""
    checkable = any(s.instruction_ids for s in states.values())
    weights = {pid: difficulty(s.instruction_ids, pass_rates) for pid, s in states.items()
               if not s.solved and s.sampled < cap and (s.instruction_ids or not checkable)}
    queue = [(-w, states[pid].sampled, _tie_break(seed, generation_round, pid), pid) for pid, w in weights.items()]
    heapq.heapify(queue)
    given: Counter = Counter()
    for _ in range(budget):
        if not queue:
            break
        *_, tie, pid = heapq.heappop(queue)
        given[pid] += 1
        if states[pid].sampled + given[pid] < cap:
            heapq.heappush(queue, (-weights[pid] / (2 * given[pid] + 1), states[pid].sampled + given[pid], tie, pid))
    return dict(sorted(given.items()))
