import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from benchmarks.planted_duplicates import pair_precision_recall, planted_corpus
from transforms.curation.clusters import connected_components
from transforms.curation.near_dedup import (
    NearDedup,
    NearDedupConfig,
    NearDuplicateEdges,
    band_hashes,
    bucket_work,
    shingles,
    spanning_edges,
)


@pytest.mark.parametrize("seed", range(3))
def test_planted_clusters_are_found_with_high_precision_and_recall(tmp_path, seed):
    docs = planted_corpus(seed=seed)
    out = tmp_path / "edges.json"
    with TestPipeline() as p:
        rows = p | beam.Create([{"candidate_id": d.doc_id, "text": d.text} for d in docs])
        _ = (rows | NearDuplicateEdges(NearDedupConfig()) | beam.combiners.ToList()
             | beam.Map(lambda edges: out.write_text(json.dumps(edges))))
    components = connected_components(json.loads(out.read_text()))
    predicted = {d.doc_id: components.get(d.doc_id, d.doc_id) for d in docs}
    precision, recall = pair_precision_recall(predicted, {d.doc_id: d.cluster for d in docs})
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)


def test_benchmark_scorer_counts_pairs():
    truth = {"a": "1", "b": "1", "c": "1", "d": "2"}
    assert pair_precision_recall(truth, truth) == (1.0, 1.0)
    assert pair_precision_recall({"a": "x", "b": "x", "c": "c", "d": "x"}, truth) == (pytest.approx(1 / 3), pytest.approx(1 / 3))


def test_connected_components_are_transitive_and_rooted_at_the_smallest_id():
    assert connected_components([("c", "d"), ("b", "c"), ("x", "y")]) == {"b": "b", "c": "b", "d": "b", "x": "x", "y": "x"}


def test_rows_share_a_band_key_exactly_when_their_band_is_equal():
    import numpy as np

    signatures = np.array([[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 9, 9, 9, 9], [1, 2, 3, 5, 5, 6, 7, 8]],
                          dtype=np.uint32)
    keys = band_hashes(signatures, bands=2)
    assert keys[0, 0] == keys[1, 0] and keys[0, 0] != keys[2, 0]
    assert keys[0, 1] == keys[2, 1] and keys[0, 1] != keys[1, 1]
    assert keys[0, 0] != keys[0, 1]
    assert list(bucket_work(((0, int(keys[0, 0])), ["b", "a"]))) == [("pair", ("a", "b"))]
    assert list(bucket_work(((0, int(keys[2, 0])), ["c"]))) == []  # a bucket of one


def test_short_texts_are_one_shingle():
    assert shingles("Hi there", 5) == {b"hi there"}


def test_one_row_per_cluster_is_kept_with_its_cluster():
    base = "the quick brown fox jumps over the lazy dog near the river bank today"
    rows = [{"candidate_id": "x2", "text": base, "score": 1.0, "dedup_cluster_size": 1},
            {"candidate_id": "x1", "text": base + " again", "score": 1.0, "dedup_cluster_size": 2},
            {"candidate_id": "x3", "text": "a completely different answer about owls", "score": 1.0, "dedup_cluster_size": 1}]
    with TestPipeline() as p:
        out = p | beam.Create(rows) | NearDedup(NearDedupConfig(ngram=3, threshold=0.6))
        kept = out.kept | "K" >> beam.Map(lambda r: (r["candidate_id"], r["dedup_cluster"], r["dedup_cluster_size"]))
        assert_that(kept, equal_to([("x1", "x1", 3), ("x3", "x3", 1)]), label="kept")
        assert_that(out.rejected | "R" >> beam.Map(lambda r: (r["candidate_id"], r["reason"])),
                    equal_to([("x2", "near_duplicate")]), label="rejected")


def huge_bucket():
    """Signatures of a bucket too large to pair off: random (dissimilar) but for a pair id050-id051
    (Jaccard 0.875) and a chain id060-id061-id062 whose ends are not similar (0.5) but each is to id061 (0.75)."""
    import numpy as np

    from transforms.curation.near_dedup import MAX_PAIRWISE_BUCKET

    members = [f"id{i:03d}" for i in range(MAX_PAIRWISE_BUCKET + 6)]
    signatures = np.random.default_rng(0).integers(0, 2**32, size=(len(members), 16)).astype(np.uint64)
    signatures[51, 2:] = signatures[50, 2:]
    signatures[61] = signatures[60]
    signatures[61, :4] += 1
    signatures[62] = signatures[61]
    signatures[62, 4:8] += 1
    return members, dict(zip(members, signatures))


def test_a_huge_bucket_finds_every_similar_pair_without_pairing_off_its_members():
    """A star around the bucket's first member (the old shortcut) found none of these pairs."""
    import numpy as np

    from transforms.curation.near_dedup import estimated_jaccard

    members, signature_of = huge_bucket()
    assert {kind for kind, _ in bucket_work(("key", members))} == {"member"}  # compared in place, not paired off
    edges = spanning_edges(members, np.stack([signature_of[m] for m in members]), 0.7)
    assert all(estimated_jaccard(signature_of[a], signature_of[b]) >= 0.7 for a, b in edges)
    assert connected_components(edges) == {"id050": "id050", "id051": "id050",
                                           "id060": "id060", "id061": "id060", "id062": "id060"}
    assert len(edges) == 3  # a spanning forest, not every pair
    assert [kind for kind, _ in bucket_work(("key", members[:5]))] == ["pair"] * 10  # a small bucket: all its pairs


@pytest.mark.parametrize("max_pairwise_bucket", [64, 1])  # 1: every bucket is compared in place
def test_the_same_clusters_as_a_datasketch_minhash_lsh_loop(tmp_path, monkeypatch, max_pairwise_bucket):
    from benchmarks.dedup import datasketch_loop_edges
    from transforms.curation import near_dedup

    monkeypatch.setattr(near_dedup, "MAX_PAIRWISE_BUCKET", max_pairwise_bucket)
    docs = planted_corpus(n_clusters=60, n_singletons=150, n_hard_negatives=40, words_per_doc=(30, 60), seed=7)
    out = tmp_path / "edges.json"
    with TestPipeline() as p:
        rows = p | beam.Create([{"candidate_id": d.doc_id, "text": d.text} for d in docs])
        _ = (rows | NearDuplicateEdges(NearDedupConfig(), batch_size=64) | beam.combiners.ToList()
             | beam.Map(lambda edges: out.write_text(json.dumps(edges))))
    ours = connected_components([tuple(e) for e in json.loads(out.read_text())])
    theirs = connected_components(datasketch_loop_edges([(d.doc_id, d.text) for d in docs]))
    assert ours == theirs and len(set(ours.values())) > 30
