"""Duplicate clusters: connected components of a similarity graph, and keeping one row per cluster.

The components are found distributed (transforms/curation/components.py) and joined to the rows by id, so no
worker holds the edges, the labels or the rows. `connected_components` (union-find) is the reference they equal,
and finishes what the distributed rounds leave.
"""

from __future__ import annotations

import apache_beam as beam

from transforms.curation.components import ConnectedComponents
from transforms.curation.rejections import REJECTED, rejected


def connected_components(edges) -> dict[str, str]:
    """Maps every id that has an edge to its component's smallest id."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            lo, hi = sorted((ra, rb))
            parent[hi] = lo
    return {x: find(x) for x in list(parent)}


def preference(row: dict):
    """Best first: highest combined score, then smallest candidate id (deterministic)."""
    return (-row["score"], row["candidate_id"])


def keep_best(cluster_id: str, rows, reason: str):
    """Keeps a cluster's best row, recording the cluster; the others are rejected as `reason`."""
    rows = sorted(rows, key=preference)
    best = rows[0]
    size = sum(r["dedup_cluster_size"] for r in rows)  # each row may already stand for exact duplicates
    yield {**best, "dedup_cluster": cluster_id, "dedup_cluster_size": size}
    for row in rows[1:]:
        yield rejected(row, reason, f"similar to kept {best['candidate_id']}")


class KeepOnePerCluster(beam.PTransform):
    """(rows, edges between candidate ids) -> tagged outputs `kept` (main) and `rejected`."""

    def __init__(self, reason: str):
        super().__init__()
        self.reason = reason

    def expand(self, inputs):
        rows, edges = inputs
        labels = edges | "Components" >> ConnectedComponents()
        by_id = rows | "KeyById" >> beam.Map(lambda r: (r["candidate_id"], r))
        reason = self.reason
        return (
            {"row": by_id, "cluster": labels}
            | "JoinClusters" >> beam.CoGroupByKey()
            | "KeyByCluster" >> beam.FlatMap(lambda kv: [(next(iter(kv[1]["cluster"]), kv[0]), row) for row in kv[1]["row"]])
            | "GroupByCluster" >> beam.GroupByKey()
            | "KeepBest" >> beam.FlatMap(lambda kv: keep_best(kv[0], kv[1], reason)).with_outputs(REJECTED, main="kept")
        )
