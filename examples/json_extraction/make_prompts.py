"""Writes this task's prompt files, seeded so the committed files are reproducible:
`python -m examples.json_extraction.make_prompts`.

train and eval: people (name, age, city) in a few sentence shapes; eval_ood: products (item, price,
color) and sentence shapes never trained on. Every prompt carries the right object as
`metadata.expected`; no sentence appears in two files."""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent
SIZES = {"train": 200, "eval": 100, "eval_ood": 100}
NAMES = ("Anna", "Ben", "Carla", "Dev", "Emma", "Farid", "Gina", "Hugo", "Ines", "Jon", "Kira", "Liam", "Mona",
         "Nils", "Olga", "Pablo", "Rosa", "Sami", "Tara", "Uma", "Viktor", "Wen", "Yara", "Zoe")
CITIES = ("Paris", "Lyon", "Oslo", "Lima", "Cairo", "Quito", "Rome", "Kyiv", "Dakar", "Hanoi", "Perth", "Bern",
          "Lagos", "Porto", "Seoul", "Turin", "Accra", "Delhi", "Malmo", "Cusco")
PEOPLE = ("{name} is {age} years old and lives in {city}.", "{name}, aged {age}, has a flat in {city}.",
          "Meet {name} from {city}, who turned {age} this spring.", "In {city} lives {name}, {age} years of age.")
ITEMS = ("lamp", "kettle", "backpack", "scarf", "mug", "umbrella", "chair", "notebook", "bicycle", "clock")
COLORS = ("red", "blue", "green", "black", "white", "yellow", "grey", "orange")
PRODUCTS = ("The {color} {item} costs {price} euros.", "For {price} euros you can buy a {color} {item}.")
ASK = "Reply with only a JSON object with the keys {keys}."


def keys_text(keys: tuple[str, ...]) -> str:
    quoted = [f'"{k}"' for k in keys]
    return ", ".join(quoted[:-1]) + f" and {quoted[-1]}"


def person(rng: random.Random) -> tuple[str, dict]:
    values = {"name": rng.choice(NAMES), "age": rng.randint(18, 90), "city": rng.choice(CITIES)}
    return rng.choice(PEOPLE).format(**values), values


def product(rng: random.Random) -> tuple[str, dict]:
    values = {"item": rng.choice(ITEMS), "price": rng.randint(3, 400), "color": rng.choice(COLORS)}
    return rng.choice(PRODUCTS).format(**values), values


def prompts(split: str, seen: set, rng: random.Random) -> list[dict]:
    rows = []
    while len(rows) < SIZES[split]:
        sentence, expected = (product if split == "eval_ood" else person)(rng)
        if sentence in seen:
            continue
        seen.add(sentence)
        text = f"{sentence} {ASK.format(keys=keys_text(tuple(expected)))}"
        rows.append({"prompt_id": f"{split}-{len(rows):04d}", "prompt": text, "metadata": {"expected": expected}})
    return rows


def main() -> None:
    rng, seen = random.Random(2026), set()
    for split in SIZES:
        lines = [json.dumps(row, sort_keys=True) for row in prompts(split, seen, rng)]
        (HERE / f"{split}.jsonl").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
