"""Builds the default task's prompts: topics x task templates x 1-3 compatible constraints.

Deterministic for a seed. Topics are partitioned between the splits, so train and the two eval
sets share no topic; eval_ood also uses unseen wordings and instruction types never trained on.
A prompt's `metadata` records its task sentence (`{"task": ...}`).
"""

from __future__ import annotations

import hashlib
import json
import random

from transforms.prompts.instruction_catalog import CATALOG, InstructionType, compatible, render

TOPICS = (
    "the water cycle", "learning a second language", "keeping houseplants alive", "saving money on groceries",
    "the history of the bicycle", "how vaccines work", "training for a first marathon", "composting at home",
    "the life of honeybees", "why the sky is blue", "starting a small bakery", "remote work habits",
    "the rules of chess", "volcanoes", "caring for an old dog", "planning a road trip", "solar panels",
    "the printing press", "writing a cover letter", "public libraries", "coral reefs", "making bread by hand",
    "the moon landing", "recycling plastics", "learning to swim", "city parks", "the invention of the telephone",
    "getting better sleep", "rainforests", "building a birdhouse", "the Roman aqueducts", "night sky photography",
    "electric cars", "a healthy breakfast", "the game of football", "the human heart", "mountain hiking safety",
    "learning to play guitar", "desert animals", "the stock market", "a rainy afternoon", "knitting a scarf",
    "the Great Wall of China", "wind turbines", "choosing a first laptop", "tidying a small apartment",
    "the migration of birds", "an old lighthouse", "time management for students", "the origins of coffee",
    "earthquakes", "a visit to a museum", "public transport", "growing tomatoes", "the periodic table",
    "ocean tides", "writing poetry", "first aid for burns", "penguins", "the history of jazz", "recycling paper",
    "a job interview", "clean drinking water", "the life of a farmer", "snowflakes", "making friends in a new city",
    "the internet", "glaciers", "a summer festival", "fixing a flat tyre", "the Olympic Games", "honey",
    "meditation for beginners", "the ancient pyramids", "bats", "a school science fair", "board games",
    "the weather forecast", "cooking rice", "the solar system", "mobile phones", "a morning routine",
    "the life of an astronaut", "trees in autumn", "a village market", "wildfires", "learning to draw",
    "electric guitars", "how bridges stand up", "the first computers", "a family picnic", "volunteering",
    "rivers", "the taste of chocolate", "dinosaurs", "writing a diary", "rain gardens", "hot air balloons",
    "a quiet library", "the seasons", "paper airplanes", "online privacy", "the circus", "clocks",
    "owls", "lemonade stands", "the subway", "thunderstorms", "a new puppy", "teamwork",
    "the ocean floor", "sourdough", "a winter morning", "camping", "fire safety at home", "bees and flowers",
    "the alphabet", "street food", "a long train ride", "caves", "the first day of school", "kites",
    "reusable bags", "the bicycle commute", "music lessons", "robots", "saving energy at home", "frogs",
    "the harvest moon", "a small fishing boat", "the desert at night", "islands", "pottery", "the postal service",
)

TASKS = (
    "Write a short paragraph about {topic}.",
    "Explain {topic} to a ten-year-old.",
    "Give some practical advice about {topic}.",
    "Describe {topic} in a few sentences.",
    "Write a brief note to a friend about {topic}.",
    "Share three interesting facts about {topic}.",
    "Write a short story involving {topic}.",
    "Summarise what someone should know about {topic}.",
)



def split_topics(seed: int, eval_fraction: float = 0.2) -> dict[str, list[str]]:
    topics = sorted(TOPICS)
    random.Random(seed).shuffle(topics)
    n_eval = int(len(topics) * eval_fraction)
    return {
        "eval": topics[:n_eval],
        "eval_ood": topics[n_eval : 2 * n_eval],
        "train": topics[2 * n_eval :],
    }


def _types_for(split: str) -> list[InstructionType]:
    if split == "eval_ood":
        return list(CATALOG)
    return [t for t in CATALOG if not t.ood_only]


def official_conflicts() -> dict[str, set[str]]:
    from if_verifiable.ifeval import instructions_registry

    return {k: set(v) for k, v in instructions_registry.INSTRUCTION_CONFLICTS.items()}


def fits(chosen: list[InstructionType], candidate: InstructionType, official: dict[str, set[str]]) -> bool:
    """The candidate can join the chosen constraints: no clash in the catalog nor in the official conflicts."""
    clash = any(candidate.instruction_id in official.get(c.instruction_id, set()) for c in chosen)
    return not clash and compatible(chosen, candidate)


def _pick_constraints(rng: random.Random, split: str, max_constraints: int, official: dict[str, set[str]]):
    pool = _types_for(split)
    if split == "eval_ood":
        # Every eval_ood prompt carries at least one never-trained type, so the set measures transfer.
        first = rng.choice([t for t in pool if t.ood_only])
    else:
        first = rng.choice(pool)
    chosen = [first]
    wanted = rng.randint(1, max_constraints)
    candidates = pool[:]
    rng.shuffle(candidates)
    for cand in candidates:
        if len(chosen) >= wanted:
            break
        if fits(chosen, cand, official):
            chosen.append(cand)
    return chosen


def prompt_id_for(split: str, text: str) -> str:
    return hashlib.sha256(f"{split}\n{text}".encode()).hexdigest()[:16]


def build_split(split: str, n: int, seed: int, max_constraints: int = 3) -> list[dict]:
    topics = split_topics(seed)[split]
    rng = random.Random(f"{seed}:{split}")
    official = official_conflicts()
    rows: list[dict] = []
    seen = set()
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > n * 50:
            raise ValueError(f"cannot build {n} distinct {split} prompts from {len(topics)} topics; lower the size")
        task = rng.choice(TASKS).format(topic=rng.choice(topics))
        constraints = _pick_constraints(rng, split, max_constraints, official)
        parts, ids, kwargs = [task], [], []
        for itype in constraints:
            kw = itype.sample_kwargs(rng)
            parts.append(render(itype, rng.choice(itype.wordings(split)), kw))
            ids.append(itype.instruction_id)
            kwargs.append(kw)
        text = " ".join(parts)
        if text in seen:
            continue
        seen.add(text)
        rows.append({
            "prompt_id": prompt_id_for(split, text),
            "messages": [{"role": "user", "content": text}],
            "instruction_ids": ids,
            "kwargs": [json.dumps(k, sort_keys=True) for k in kwargs],
            "source": "selfsift/ifeval-synth",
            "split": split,
            "metadata": json.dumps({"task": task}),
        })
    return sorted(rows, key=lambda r: r["prompt_id"])

