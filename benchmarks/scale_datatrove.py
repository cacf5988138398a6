"""datatrove's MinHash dedup (its four local stages, 2 worker processes) on a folder of candidate shards, with
selfsift's shingles and LSH shape: word 5-grams of the normalized text, 32 bands of 4 hashes. Writes
OUT/clusters.json: candidate id -> "cluster-N" for every document datatrove put in a cluster.

datatrove confirms no pair: documents that share one band's 4 hashes are duplicates. Run by benchmarks/scale.py:
python -m benchmarks.scale_datatrove CANDIDATES_FOLDER OUT
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.word_tokenizers import WordTokenizer

from transforms.curation.near_dedup import NearDedupConfig, shingles

PARAMS = NearDedupConfig()
CONFIG = MinhashConfig(n_grams=PARAMS.ngram, num_buckets=PARAMS.bands, hashes_per_bucket=PARAMS.num_perm // PARAMS.bands)
WORKERS = 2


class Unused(WordTokenizer):
    """get_shingles below replaces datatrove's tokenizing (whose English tokenizer needs spaCy)."""

    def word_tokenize(self, text):
        raise NotImplementedError

    def sent_tokenize(self, text):
        raise NotImplementedError

    def span_tokenize(self, text):
        raise NotImplementedError


class SelfsiftShingles(MinhashDedupSignature):
    def get_shingles(self, text: str) -> np.ndarray:
        return np.fromiter((self._hash_func(s) for s in sorted(shingles(text, PARAMS.ngram))),
                           dtype=np.uint64).reshape((-1, 1))


def read(folder: str) -> ParquetReader:
    return ParquetReader(folder, text_key="text", id_key="candidate_id", glob_pattern="part-*.parquet")


def run(candidates: str, out: Path) -> None:
    stages = [
        ([read(candidates), SelfsiftShingles(str(out / "signatures"), config=CONFIG, language=Unused())], WORKERS),
        ([MinhashDedupBuckets(str(out / "signatures"), str(out / "buckets"), config=CONFIG)], CONFIG.num_buckets),
        ([MinhashDedupCluster(str(out / "buckets"), str(out / "remove"), config=CONFIG, save_cluster_id=True)], 1),
        ([read(candidates),
          MinhashDedupFilter(str(out / "remove"), load_cluster_ids=True,
                             exclusion_writer=JsonlWriter(str(out / "removed"))),
          JsonlWriter(str(out / "kept"))], WORKERS),
    ]
    for n, (pipeline, tasks) in enumerate(stages):
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=WORKERS, logging_dir=str(out / f"logs-{n}")).run()
    clusters = {}
    for path in sorted(out.glob("kept/*.jsonl.gz")) + sorted(out.glob("removed/*.jsonl.gz")):
        with gzip.open(path, "rt") as lines:
            for line in lines:
                doc = json.loads(line)
                if doc["metadata"].get("minhash_cluster_id", -1) != -1:
                    clusters[doc["id"]] = f"cluster-{doc['metadata']['minhash_cluster_id']}"
    (out / "clusters.json").write_text(json.dumps(clusters))


if __name__ == "__main__":
    run(sys.argv[1], Path(sys.argv[2]))
