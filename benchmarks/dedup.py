"""Near-duplicate removal: the curate stage's Beam composite against datasketch's MinHashLSH in a
plain Python loop, at equal parameters (word 5-shingles, 128 permutations, 32 bands of 4 rows,
estimated Jaccard >= 0.7 confirms a pair), on planted-cluster corpora of short documents.

Each (path, size) runs in its own process, so its peak memory is its own. Run: python -m benchmarks.dedup
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from benchmarks.common import peak_rss_mib, print_table, stopwatch, write_result
from benchmarks.planted_duplicates import pair_precision_recall, planted_corpus
from transforms.curation.clusters import connected_components
from transforms.curation.near_dedup import MINHASH_SEED, NearDedupConfig, shingles

PARAMS = NearDedupConfig()
SIZES = (20_000, 100_000, 500_000)


def corpus(n: int):
    """About n short documents (30-60 words): a tenth are planted clusters of 2-5 near-copies."""
    clusters, hard = n // 10, n // 40
    singletons = max(0, n - round(clusters * 3.5) - 2 * hard)
    return planted_corpus(n_clusters=clusters, n_singletons=singletons, n_hard_negatives=hard,
                          words_per_doc=(30, 60), seed=n)


def selfsift_edges(corpus_file: str) -> list:
    """The curate stage's composite, reading the documents from Parquet as the stage does."""
    import tempfile

    import apache_beam as beam

    from transforms.curation.near_dedup import NearDuplicateEdges

    with tempfile.TemporaryDirectory() as scratch:
        out = f"{scratch}/edges.json"
        with beam.Pipeline(runner="DirectRunner") as p:
            _ = (p | beam.io.ReadFromParquet(corpus_file) | NearDuplicateEdges(PARAMS) | beam.combiners.ToList()
                 | beam.Map(lambda edges: open(out, "w").write(json.dumps(edges))))
        return [tuple(e) for e in json.loads(open(out).read())]


def datasketch_loop_edges(docs) -> list:
    """What a user writes with datasketch: sign, query the index, confirm, insert; one doc at a time.
    `docs` are (id, text) pairs, or a Parquet file of them."""
    from datasketch import MinHash, MinHashLSH

    if isinstance(docs, str):
        import pyarrow.parquet as pq

        table = pq.read_table(docs)
        docs = zip(table["candidate_id"].to_pylist(), table["text"].to_pylist())
    rows = PARAMS.num_perm // PARAMS.bands
    lsh = MinHashLSH(num_perm=PARAMS.num_perm, params=(PARAMS.bands, rows))
    signatures, edges = {}, []
    for doc_id, text in docs:
        m = MinHash(num_perm=PARAMS.num_perm, seed=MINHASH_SEED)
        m.update_batch(sorted(shingles(text, PARAMS.ngram)))
        for other in lsh.query(m):
            if m.jaccard(signatures[other]) >= PARAMS.threshold:
                edges.append((other, doc_id))
        lsh.insert(doc_id, m)
        signatures[doc_id] = m
    return edges


PATHS = {"selfsift near dedup (Beam, DirectRunner)": selfsift_edges, "datasketch MinHashLSH loop": datasketch_loop_edges}


def measure(path: str, n: int) -> dict:
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = corpus(n)
    with tempfile.TemporaryDirectory() as scratch:
        corpus_file = f"{scratch}/corpus.parquet"
        pq.write_table(pa.table({"candidate_id": [d.doc_id for d in docs], "text": [d.text for d in docs]}),
                       corpus_file)
        with stopwatch() as t:
            edges = PATHS[path](corpus_file)
            components = connected_components(edges)
    predicted = {d.doc_id: components.get(d.doc_id, d.doc_id) for d in docs}
    precision, recall = pair_precision_recall(predicted, {d.doc_id: d.cluster for d in docs})
    return {"docs": len(docs), "seconds": t["seconds"], "docs_per_second": len(docs) / t["seconds"],
            "precision": precision, "recall": recall, "peak_rss_mib": peak_rss_mib()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--one", nargs=2, metavar=("PATH", "N"), help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]))))
        return {}
    runs = []
    for n in args.sizes:
        for path in PATHS:
            child = subprocess.run([sys.executable, "-m", "benchmarks.dedup", "--one", path, str(n)],
                                   capture_output=True, text=True)
            if child.returncode != 0:
                raise SystemExit(f"{path} at {n} documents failed:\n{child.stderr[-3000:]}")
            runs.append({"path": path, "size": n, **json.loads(child.stdout.strip().splitlines()[-1])})
            print(f"{path}, {n} docs: {runs[-1]['seconds']:.1f} s", flush=True)
    print_table("Near-duplicate removal (planted clusters; pairwise precision and recall)",
                ["path", "docs", "seconds", "docs/s", "precision", "recall", "peak MiB"],
                [[r["path"], r["docs"], r["seconds"], r["docs_per_second"], f"{r['precision']:.4f}",
                  f"{r['recall']:.4f}", r["peak_rss_mib"]] for r in runs])
    result = {"params": PARAMS.__dict__, "runs": runs}
    write_result("dedup", result)
    return result


if __name__ == "__main__":
    main()
