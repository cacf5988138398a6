"""Distributed connected components (transforms/curation/components.py) against union-find over all the edges
(clusters.connected_components), on random graphs and on chains too long for the unrolled rounds."""

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transforms.curation.clusters import connected_components
from transforms.curation.components import ConnectedComponents


def check(edges: list[tuple[str, str]], rounds: int, expected: dict[str, str]) -> None:
    with TestPipeline() as p:
        labels = p | beam.Create(edges or [("", "")]) | beam.Filter(lambda e: e != ("", "")) | ConnectedComponents(rounds)
        assert_that(labels, equal_to(sorted(expected.items())))


def reference(edges: list[tuple[str, str]]) -> dict[str, str]:
    return {node: label for node, label in connected_components(edges).items()
            if any(node in edge and edge[0] != edge[1] for edge in edges)}


node = st.integers(min_value=0, max_value=40).map(lambda i: f"id{i:03d}")


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edges=st.lists(st.tuples(node, node), max_size=60), rounds=st.sampled_from([0, 1, 4]))
def test_the_same_components_as_union_find_on_random_graphs(edges, rounds):
    check(edges, rounds, reference(edges))


def test_a_chain_longer_than_the_rounds_contract_is_finished_over_the_residue():
    """A path of 300 ids in shuffled order: two alternations leave most of it uncontracted."""
    import random

    ids = [f"n{i:04d}" for i in range(300)]
    random.Random(7).shuffle(ids)
    chain = list(zip(ids, ids[1:]))
    apart = [("z1", "z2"), ("z2", "z3")]
    expected = reference(chain + apart)
    assert set(expected.values()) == {"n0000", "z1"}
    check(chain + apart, 2, expected)
