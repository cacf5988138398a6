import json
from collections import Counter

from transforms.io.layout import SPLITS
from transforms.judges.ifeval_verifier import build_checker
from transforms.prompts.instruction_catalog import CATALOG
from transforms.prompts.prompt_builder import TOPICS, build_split, split_topics

TRAIN_TYPES = [t for t in CATALOG if not t.ood_only]
OOD_ONLY = [t for t in CATALOG if t.ood_only]


def test_catalog_has_enough_types_and_wordings():
    assert len(TRAIN_TYPES) >= 12
    assert len(OOD_ONLY) >= 3
    for t in TRAIN_TYPES:
        assert len(t.train_wordings) >= 3, t.instruction_id
        assert t.ood_wordings and not set(t.ood_wordings) & set(t.train_wordings), t.instruction_id


def test_splits_share_no_topics():
    parts = split_topics(seed=7)
    assert sorted(sum(parts.values(), [])) == sorted(TOPICS)
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not set(parts[a]) & set(parts[b])


def _topic_of(prompt, topics):
    text = prompt["messages"][0]["content"]
    return [t for t in topics if t in text]


def test_prompts_use_only_their_split_topics():
    parts = split_topics(seed=3)
    for split in SPLITS:
        rows = build_split(split, 40, seed=3)
        others = [t for s in SPLITS if s != split for t in parts[s]]
        for row in rows:
            assert _topic_of(row, parts[split]), row["messages"][0]["content"]
            assert not [t for t in _topic_of(row, others) if not any(t in own for own in parts[split])]


def test_build_is_deterministic_and_ids_unique():
    a, b = build_split("train", 60, seed=11), build_split("train", 60, seed=11)
    assert a == b
    assert len({r["prompt_id"] for r in a}) == 60
    assert build_split("train", 60, seed=12) != a


def test_constraints_are_valid_for_the_official_checkers():
    for split in SPLITS:
        for row in build_split(split, 80, seed=5):
            ids = row["instruction_ids"]
            assert 1 <= len(ids) <= 3 and len(set(ids)) == len(ids)
            for instruction_id, kw in zip(ids, row["kwargs"], strict=True):
                build_checker(instruction_id, json.loads(kw), row["messages"][0]["content"])


def test_eval_ood_holds_unseen_types_and_wordings():
    ood = build_split("eval_ood", 80, seed=5)
    ood_only = {t.instruction_id for t in OOD_ONLY}
    assert all(set(r["instruction_ids"]) & ood_only for r in ood)
    train_text = " ".join(r["messages"][0]["content"] for r in build_split("train", 200, seed=5))
    assert not any(i in ood_only for r in build_split("train", 200, seed=5) for i in r["instruction_ids"])
    for t in TRAIN_TYPES:
        for w in t.ood_wordings:
            assert w.split("{")[0] not in train_text or not w.split("{")[0].strip()


def test_train_covers_many_types():
    counts = Counter(i for r in build_split("train", 300, seed=1234) for i in r["instruction_ids"])
    assert len(counts) == len(TRAIN_TYPES)
