"""A corpus with known near-duplicate clusters, for measuring near-dup removal.

Base documents are drawn from a Zipf-weighted synthetic vocabulary, so unrelated documents share
common words the way real answers do. Each planted cluster is a base document plus variants made
by a few word edits (substitute, insert, delete). Hard negatives share a long passage with another
document but stay below the similarity a near-duplicate has. Ground truth is the cluster label.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "pe", "da", "gu", "ri", "so", "ba", "fe", "zu"]


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str
    cluster: str  # ground truth: documents with the same cluster are near-duplicates


def _vocabulary(size: int, rng: random.Random) -> list[str]:
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4))))
    return sorted(words)


def _edit(tokens: list[str], edits: int, vocab: list[str], rng: random.Random) -> list[str]:
    tokens = list(tokens)
    for _ in range(edits):
        i = rng.randrange(len(tokens))
        op = rng.choice(("substitute", "insert", "delete"))
        if op == "substitute":
            tokens[i] = rng.choice(vocab)
        elif op == "insert":
            tokens.insert(i, rng.choice(vocab))
        elif len(tokens) > 1:
            del tokens[i]
    return tokens


def planted_corpus(n_clusters: int = 150, n_singletons: int = 400, n_hard_negatives: int = 100,
                   max_variants: int = 4, words_per_doc: tuple[int, int] = (80, 140),
                   edits_per_100_words: float = 2.0, seed: int = 0) -> list[Document]:
    rng = random.Random(seed)
    vocab = _vocabulary(4000, rng)
    weights = [1.0 / (rank + 1) for rank in range(len(vocab))]

    def base_tokens() -> list[str]:
        return rng.choices(vocab, weights=weights, k=rng.randint(*words_per_doc))

    docs: list[Document] = []
    counter = itertools.count()

    def add(tokens: list[str], cluster: str | None = None) -> None:
        doc_id = f"d{next(counter):06d}"
        docs.append(Document(doc_id, " ".join(tokens), cluster or doc_id))

    for c in range(n_clusters):
        base = base_tokens()
        add(base, f"c{c}")
        for _ in range(rng.randint(1, max_variants)):
            edits = max(1, round(len(base) * edits_per_100_words / 100))
            add(_edit(base, edits, vocab, rng), f"c{c}")
    for _ in range(n_singletons):
        add(base_tokens())
    for _ in range(n_hard_negatives):
        shared = base_tokens()[:35]  # a long shared passage, about a third of each document
        add(shared + base_tokens()[:70])
        add(base_tokens()[:70] + shared)
    order = list(range(len(docs)))
    rng.shuffle(order)
    return [docs[i] for i in order]


def pair_precision_recall(predicted: dict[str, str], truth: dict[str, str]) -> tuple[float, float]:
    """Precision and recall over document pairs put in the same cluster."""

    def same_cluster_pairs(labels: dict[str, str]) -> set[tuple[str, str]]:
        groups: dict[str, list[str]] = {}
        for doc_id, label in labels.items():
            groups.setdefault(label, []).append(doc_id)
        return {pair for members in groups.values() for pair in itertools.combinations(sorted(members), 2)}

    predicted_pairs, true_pairs = same_cluster_pairs(predicted), same_cluster_pairs(truth)
    hits = len(predicted_pairs & true_pairs)
    precision = hits / len(predicted_pairs) if predicted_pairs else 1.0
    recall = hits / len(true_pairs) if true_pairs else 1.0
    return precision, recall
