"""Connected components of a graph of ids, distributed: no step holds the edges, or the labels, on one worker.

Alternating large-star and small-star rounds (Kiveris et al. 2014, "Connected Components in MapReduce and
Beyond"), each one GroupByKey, turn every component into a star around its smallest id; `ROUNDS` alternations
are unrolled in the graph. A component they did not finish contracting (a long chain; tests/test_components.py
has a 300-id one that two alternations leave) leaves a residue: the edges of nodes with more than one smaller
neighbour, or whose smaller neighbour is not yet a root, and those nodes' own edges to a root. Union-find over
that residue alone (gathered, so it must stay small: it is empty once the rounds converge; its size at scale is
not measured yet) finishes those components. Every id is labelled with its component's smallest id, the same
labels as `clusters.connected_components` over all the edges.
"""

from __future__ import annotations

import apache_beam as beam

ROUNDS = 4  # large-star/small-star alternations; what is left is finished over the residue


def _large_star(node_neighbours):
    """Links each larger neighbour of a node to the smallest of the node and its neighbours."""
    node, neighbours = node_neighbours
    neighbours = set(neighbours)
    smallest = min(neighbours | {node})
    for neighbour in neighbours:
        if neighbour > node:
            yield neighbour, smallest


def _small_star(node_smaller):
    """Links a node and each of its smaller neighbours to the smallest of them."""
    node, smaller = node_smaller
    members = set(smaller) | {node}
    smallest = min(members)
    for member in members:
        if member != smallest:
            yield member, smallest


def _both_ways(edge):
    yield edge
    yield edge[1], edge[0]


def _oriented(edge):
    """(larger, smaller), or nothing for a self-loop."""
    a, b = edge
    if a != b:
        yield (a, b) if a > b else (b, a)


def _star_or_residue(joined):
    """A node's edges after the rounds, keyed by its one smaller neighbour: ('star', node) when that neighbour is a
    root, else every edge of the node as residue."""
    node, smaller = joined
    smaller = sorted(set(smaller))
    if len(smaller) == 1:
        yield "parent", (smaller[0], node)
    else:
        for other in smaller:
            yield "residue", (node, other)


def _settle(parent_and_children):
    """A parent with its children: stars when the parent is a root (it has no smaller neighbour), else residue."""
    parent, grouped = parent_and_children
    children, has_parent = list(grouped["children"]), bool(list(grouped["non_root"]))
    for child in children:
        yield ("residue" if has_parent else "star"), (child, parent)


class ConnectedComponents(beam.PTransform):
    """(id, id) edges -> (id, its component's smallest id) for every id with an edge."""

    def __init__(self, rounds: int = ROUNDS):
        super().__init__()
        self.rounds = rounds

    def expand(self, edges):
        from transforms.curation.clusters import connected_components

        current = edges | "Orient" >> beam.FlatMap(_oriented)
        for i in range(self.rounds):
            current = (current
                       | f"LargeStar{i}/BothWays" >> beam.FlatMap(_both_ways)
                       | f"LargeStar{i}/Group" >> beam.GroupByKey()
                       | f"LargeStar{i}/Link" >> beam.FlatMap(_large_star)
                       | f"SmallStar{i}/Group" >> beam.GroupByKey()
                       | f"SmallStar{i}/Link" >> beam.FlatMap(_small_star))
        by_node = current | "SmallerNeighbours" >> beam.GroupByKey()
        parted = by_node | "OneParent" >> beam.FlatMap(_star_or_residue)
        parents = parted | "Parents" >> beam.Filter(lambda kv: kv[0] == "parent") | "ParentEdges" >> beam.Values()
        non_roots = by_node | "NonRoots" >> beam.Map(lambda kv: (kv[0], True))
        settled = ({"children": parents, "non_root": non_roots}
                   | "JoinParents" >> beam.CoGroupByKey()
                   | "Settle" >> beam.FlatMap(_settle))
        stars = settled | "Stars" >> beam.Filter(lambda kv: kv[0] == "star") | "StarEdges" >> beam.Values()
        core = ((parted, settled) | "AllParted" >> beam.Flatten()
                | "Residue" >> beam.Filter(lambda kv: kv[0] == "residue") | "ResidueEdges" >> beam.Values())
        core_nodes = core | "CoreNodes" >> beam.FlatMap(lambda edge: [(node, True) for node in edge])
        # a residue node's own star edge joins the residue: union-find then sees every link between roots
        their_stars = ({"star": stars, "residue": core_nodes} | "JoinResidueStars" >> beam.CoGroupByKey()
                       | "TheirStars" >> beam.FlatMap(
                           lambda kv: [(kv[0], root) for root in kv[1]["star"]] if kv[1]["residue"] else []))
        residue = (core, their_stars) | "AllResidue" >> beam.Flatten()
        done = beam.pvalue.AsDict(
            residue | "GatherResidue" >> beam.combiners.ToList()
            | "FinishResidue" >> beam.FlatMap(lambda es: connected_components(es).items()))
        children = stars | "LabelChildren" >> beam.Map(lambda edge, done: (edge[0], done.get(edge[1], edge[1])),
                                                       done=done)
        roots = stars | "LabelRoots" >> beam.Map(lambda edge, done: (edge[1], done.get(edge[1], edge[1])), done=done)
        residue_nodes = residue | "LabelResidue" >> beam.FlatMap(
            lambda edge, done: [(node, done[node]) for node in edge], done=done)
        return ((children, roots, residue_nodes) | "AllLabels" >> beam.Flatten()
                | "OneLabelEach" >> beam.CombinePerKey(min))
