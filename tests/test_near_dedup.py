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
    bucket_members,
    candidate_pairs,
    shingles,
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
    members = list(bucket_members(keys[:, 0], np.array(["b", "a", "c"], dtype=object)))
    assert members == [["a", "b"]]


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


def test_a_huge_bucket_is_compared_as_a_star_not_all_pairs():
    from transforms.curation.near_dedup import MAX_PAIRWISE_BUCKET

    members = [f"id{i:03d}" for i in range(MAX_PAIRWISE_BUCKET + 6)]
    pairs = candidate_pairs(members)
    assert len(pairs) == len(members) - 1 and all(a == "id000" for a, _ in pairs)
    assert set(connected_components(pairs).values()) == {"id000"}
    assert len(candidate_pairs(members[:5])) == 10


def test_the_same_clusters_as_a_datasketch_minhash_lsh_loop(tmp_path):
    from benchmarks.dedup import datasketch_loop_edges

    docs = planted_corpus(n_clusters=60, n_singletons=150, n_hard_negatives=40, words_per_doc=(30, 60), seed=7)
    out = tmp_path / "edges.json"
    with TestPipeline() as p:
        rows = p | beam.Create([{"candidate_id": d.doc_id, "text": d.text} for d in docs])
        _ = (rows | NearDuplicateEdges(NearDedupConfig(), batch_size=64) | beam.combiners.ToList()
             | beam.Map(lambda edges: out.write_text(json.dumps(edges))))
    ours = connected_components([tuple(e) for e in json.loads(out.read_text())])
    theirs = connected_components(datasketch_loop_edges([(d.doc_id, d.text) for d in docs]))
    assert ours == theirs and len(set(ours.values())) > 30
