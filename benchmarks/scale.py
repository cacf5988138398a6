"""Curation at scale: the `curate` stage on 100k to 1M synthetic candidates under the multi-process
DirectRunner, beside the curate stage before near dedup was distributed (commit BEFORE) and datatrove's
MinHash dedup on the same texts.

The candidates look like sampled answers: 4 per prompt, 20-140 words from a Zipf-weighted vocabulary, half of
the singletons failing the verifier. Planted among them, all passing:
- clusters of 2-5 near-copies (one word substituted per copy, 80-140 words: estimated Jaccard ~0.88);
- chains of 12, each link one substitution from the last, so a chain's ends share no band and only the
  components step joins them.
Found clusters are read back from the rejected rows ("similar to kept X") and compared with the planted ones.

Every run is a child process tree sampled every 0.2 s: peak RSS of the launcher (the stage's own process) and
of the largest worker process. The "runner floor" reads the candidates, shuffles them once and counts them: what
the DirectRunner's launcher holds for a corpus of that size whatever the pipeline (it buffers every shuffled
PCollection in memory), so the launcher's figures can be read against it.
Run: python -m benchmarks.scale [--sizes N ...] [--paths ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from benchmarks.common import RESULTS, print_table, write_result
from benchmarks.planted_duplicates import SYLLABLES
from schemas.records import CANDIDATE, JUDGMENT, PROMPT, Candidate
from tests.records import record
from tests.stage_fixtures import prompt
from transforms.curation.near_dedup import NearDedupConfig
from transforms.io.parquet_io import shard_name

SIZES = (100_000, 300_000, 1_000_000)
BEFORE = "ff679e9"  # the last commit with the broadcast near dedup, union-find on one worker and the prompt side input
SAMPLES_PER_PROMPT = 4
CHAIN_LENGTH = 12
ROWS_PER_SHARD = 50_000
MULTI = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
ROOT = Path(__file__).resolve().parent.parent
PARAMS = NearDedupConfig()
TIME_LIMIT_S = 45 * 60


def synthetic_texts(n: int, seed: int) -> tuple[list[str], list[str], list[bool]]:
    """n texts, their planted cluster labels (a singleton is its own), and whether each passes the verifier."""
    rng = np.random.default_rng(seed)
    syllables = np.array(SYLLABLES)
    vocab = sorted({"".join(rng.choice(syllables, size=rng.integers(1, 5))) for _ in range(6000)})
    p = 1.0 / np.arange(1, len(vocab) + 1)
    p /= p.sum()
    vocab_array = np.array(vocab)

    def tokens(lo: int, hi: int) -> list[str]:
        return list(vocab_array[rng.choice(len(vocab), size=int(rng.integers(lo, hi + 1)), p=p)])

    def substituted(words: list[str], at: int) -> list[str]:
        out = list(words)
        while out[at] == words[at]:
            out[at] = vocab[int(rng.integers(len(vocab)))]
        return out

    texts, labels, passes = [], [], []

    def plant(members: list[list[str]], label: str) -> None:
        texts.extend(" ".join(m) for m in members)
        labels.extend([label] * len(members))
        passes.extend([True] * len(members))

    cluster_budget = n // 10
    while cluster_budget >= 2:
        size = int(min(rng.integers(2, 6), cluster_budget))
        base = tokens(80, 140)
        plant([base] + [substituted(base, int(rng.integers(len(base)))) for _ in range(size - 1)], f"c{len(texts)}")
        cluster_budget -= size
    for _ in range(n // 50 // CHAIN_LENGTH):
        link, chain, label = tokens(80, 140), [], f"chain{len(texts)}"
        for at in rng.permutation(len(link))[:CHAIN_LENGTH]:
            chain.append(link)
            link = substituted(link, int(at))
        plant(chain, label)
    while len(texts) < n:
        texts.append(" ".join(tokens(20, 140)))
        labels.append(f"s{len(texts)}")
        passes.append(bool(rng.random() < 0.5))
    return texts, labels, passes


def write_project(root: Path, n: int, seed: int) -> list[str]:
    """A project folder holding prompts, candidates and verifier judgments of iteration 1; returns the labels."""
    texts, labels, passes = synthetic_texts(n, seed)
    order = np.random.default_rng(seed + 1).permutation(n)
    (root / "models/base").mkdir(parents=True)
    (root / "models/base/model.safetensors").write_bytes(b"the manifest hashes the generator's weights")
    prompts_dir, candidates, judgments = (root / "data/prompts", root / "data/candidates/iter-001",
                                          root / "data/judgments/iter-001")
    for folder in (prompts_dir, candidates, judgments):
        folder.mkdir(parents=True)
    for split in ("eval", "eval_ood"):  # what decontamination indexes
        pq.write_table(pa.Table.from_pylist([prompt(f"{split}-{i}", f"Write about topic {i} of {split}.", split)
                                             for i in range(20)], schema=PROMPT), prompts_dir / f"{split}.parquet")
    pq.write_table(pa.Table.from_pylist([prompt(f"p{i:07d}", f"Answer question {i}.", "train")
                                         for i in range(-(-n // SAMPLES_PER_PROMPT))], schema=PROMPT),
                   prompts_dir / "train.parquet")
    shards = -(-n // ROWS_PER_SHARD)
    for s in range(shards):
        rows, verdicts = [], []
        for position in range(s * ROWS_PER_SHARD, min(n, (s + 1) * ROWS_PER_SHARD)):
            i = int(order[position])
            cid = f"x{i:07d}"
            rows.append(record(Candidate, candidate_id=cid, prompt_id=f"p{position // SAMPLES_PER_PROMPT:07d}",
                               text=texts[i], model="m", model_sha256="0" * 64, iteration=1, seed=position,
                               temperature=0.8, top_p=0.95, max_new_tokens=256, finish_reason="stop",
                               origin="sampled", generation_round=1))
            verdicts.append({"candidate_id": cid, "judge": "ifeval_verifier", "score": float(passes[i]),
                             "passed": passes[i], "detail": "{}"})
        pq.write_table(pa.Table.from_pylist(rows, schema=CANDIDATE), candidates / shard_name(s, shards))
        pq.write_table(pa.Table.from_pylist(verdicts, schema=JUDGMENT), judgments / shard_name(s, shards))
    return labels


class PeakMemory:
    """Samples a process tree's resident memory: the peak of the root process and of its largest descendant."""

    def __init__(self, pid: int, every_s: float = 0.2):
        self.root, self.every_s = psutil.Process(pid), every_s
        self.launcher_mib = self.worker_mib = 0.0
        self.workers: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.launcher_mib = max(self.launcher_mib, self.root.memory_info().rss / 2**20)
                for child in self.root.children(recursive=True):
                    try:
                        self.worker_mib = max(self.worker_mib, child.memory_info().rss / 2**20)
                        self.workers.add(child.pid)
                    except psutil.NoSuchProcess:
                        pass
            except psutil.NoSuchProcess:
                return
            self._stop.wait(self.every_s)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {"peak_rss_launcher_mib": round(self.launcher_mib, 1), "peak_rss_worker_mib": round(self.worker_mib, 1),
                "worker_processes": len(self.workers)}


def timed(command: list[str], cwd: Path, env: dict) -> dict:
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    memory = PeakMemory(child.pid)
    try:
        output, _ = child.communicate(timeout=TIME_LIMIT_S)
    except subprocess.TimeoutExpired:
        for process in psutil.Process(child.pid).children(recursive=True) + [psutil.Process(child.pid)]:
            process.kill()
        child.communicate()
        return {"failed": f"over the time limit of {TIME_LIMIT_S} s", "seconds": time.perf_counter() - start,
                **memory.stop()}
    seconds = time.perf_counter() - start
    result = {"seconds": round(seconds, 1), **memory.stop()}
    if child.returncode != 0:
        result["failed"] = output[-3000:]
    return result


def kept_representatives(detail: str) -> str:
    return detail.rsplit("kept ", 1)[1]


def curate_clusters(root: Path) -> dict[str, str]:
    """candidate id -> the kept candidate its duplicate rejections lead to (only ids that were rejected as one)."""
    table = pq.ParquetDataset(str(root / "data/rejected/iter-001")).read(columns=["candidate_id", "reason", "reason_detail"])
    parent = {cid: kept_representatives(detail)
              for cid, reason, detail in zip(*(table.column(c).to_pylist() for c in ("candidate_id", "reason", "reason_detail")))
              if reason in ("near_duplicate", "duplicate")}
    return parent


def recovered(parent: dict[str, str], labels: list[str]) -> dict:
    """Planted clusters found exactly (every member led to one kept row, and no other row led there), clusters
    found with foreign members, and planted clusters split."""

    def root(cid: str) -> str:
        while cid in parent:
            cid = parent[cid]
        return cid

    found: dict[str, list[str]] = {}
    for i, label in enumerate(labels):
        found.setdefault(root(f"x{i:07d}"), []).append(label)
    planted = Counter(label for label in labels if not label.startswith("s"))
    mixed = sum(1 for members in found.values() if len(set(members)) > 1)
    exact = sum(1 for members in found.values() if len(set(members)) == 1 and members[0] in planted
                and len(members) == planted[members[0]])
    chains = sum(1 for members in found.values() if len(set(members)) == 1 and members[0].startswith("chain")
                 and len(members) == planted[members[0]])
    return {"planted_clusters": len(planted), "recovered_exactly": exact, "found_with_foreign_members": mixed,
            "planted_chains": sum(1 for label in planted if label.startswith("chain")), "chains_recovered": chains}


def run_curate(code: Path, root: Path) -> dict:
    """The curate stage of the code at `code`, with that code's params.yaml (its keys may differ)."""
    params = yaml.safe_load((code / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump({**params, "base_model": {"source": "unused", "sha256": ""}},
                                                     sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(code)}
    command = [sys.executable, "-c", "import sys; from pipelines.cli import main; sys.exit(main())",
               "curate", "--iteration", "1", *MULTI]
    return timed(command, root, env)


def before_checkout() -> Path:
    path = Path(tempfile.gettempdir()) / f"selfsift-{BEFORE}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), BEFORE], cwd=ROOT, check=True,
                       capture_output=True)
    return path


def runner_floor(candidates: str) -> None:
    """What the multi-process DirectRunner itself holds for a corpus: read the candidates, shuffle them once, count."""
    import apache_beam as beam

    with beam.Pipeline(argv=MULTI) as p:
        _ = (p | beam.io.ReadFromParquet(f"{candidates}/part-*.parquet") | beam.Reshuffle()
             | beam.combiners.Count.Globally())


def measure(path: str, n: int, root: Path, labels: list[str]) -> dict:
    if path == "runner floor":
        result = timed([sys.executable, "-m", "benchmarks.scale", "--floor", str(root / "data/candidates/iter-001")],
                       ROOT, {**os.environ, "PYTHONPATH": str(ROOT)})
    elif path == "datatrove":
        result = timed([sys.executable, "-m", "benchmarks.scale_datatrove", str(root / "data/candidates/iter-001"),
                        str(root / "datatrove")], ROOT, {**os.environ, "PYTHONPATH": str(ROOT)})
        if "failed" not in result:
            clusters = json.loads((root / "datatrove/clusters.json").read_text())
            result.update(recovered(clusters, labels), documents_in_clusters=len(clusters))
    else:
        result = run_curate(ROOT if path == "selfsift" else before_checkout(), root)
        if "failed" not in result:
            duplicates = curate_clusters(root)
            result.update(recovered(duplicates, labels), duplicates_rejected=len(duplicates))
    if "failed" not in result:
        result["rows_per_second"] = round(n / result["seconds"], 1)
    return {"path": path, "candidates": n, **result}


PATHS = ("selfsift", "before", "datatrove", "runner floor")
LABELS = {"selfsift": "selfsift curate", "before": f"selfsift curate at {BEFORE}", "datatrove": "datatrove MinHash",
          "runner floor": "DirectRunner: read, shuffle, count"}


def plot(result: dict, path: Path) -> None:
    """Peak RSS of the launcher and of the largest worker, and rows/s, against the candidates, per path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("peak_rss_launcher_mib", "launcher peak RSS (MiB)"), ("peak_rss_worker_mib", "largest worker peak RSS (MiB)"),
              ("rows_per_second", "candidates per second"))
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 3.8))
    for ax, (key, title) in zip(axes, panels):
        for name in PATHS:  # a run that failed after its pipeline ended still shows its memory, as an x
            runs = [r for r in result["runs"] if r["path"] == name and key in r]
            if runs:
                line, = ax.plot([r["candidates"] for r in runs], [r[key] for r in runs], marker="o", label=LABELS[name],
                                markevery=[i for i, r in enumerate(runs) if "failed" not in r])
                failed = [r for r in runs if "failed" in r]
                ax.plot([r["candidates"] for r in failed], [r[key] for r in failed], "x", color=line.get_color(), ms=9)
        ax.set_xscale("log")
        ax.set_xlabel("candidates")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=0)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"curate under the multi-process DirectRunner (2 workers); {result['machine'].get('cpu', '')}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--paths", nargs="*", default=list(PATHS), choices=PATHS)
    parser.add_argument("--name", default="scale", help="results file name (benchmarks/results/NAME.json)")
    parser.add_argument("--plot", action="store_true", help="only draw NAME.png from NAME.json")
    parser.add_argument("--floor", help=argparse.SUPPRESS)  # the child process of the runner floor
    args = parser.parse_args(argv)
    if args.floor:
        runner_floor(args.floor)
        return {}
    if args.plot:
        plot(json.loads((RESULTS / f"{args.name}.json").read_text()), RESULTS / f"{args.name}.png")
        return {}
    runs = []
    with tempfile.TemporaryDirectory(dir=ROOT / ".cache") as scratch:
        for n in args.sizes:
            root = Path(scratch) / str(n)
            labels = write_project(root, n, seed=n)
            for path in args.paths:
                runs.append(measure(path, n, root, labels))
                print(json.dumps(runs[-1]), flush=True)
                write_result(args.name, {"before": BEFORE, "multi": MULTI, "near_dedup": PARAMS.__dict__, "runs": runs})
    print_table("Curation at scale (multi-process DirectRunner, 2 workers)",
                ["path", "candidates", "seconds", "rows/s", "launcher MiB", "worker MiB", "exact", "planted"],
                [[r["path"], r["candidates"], r.get("seconds", ""), r.get("rows_per_second", "failed"),
                  r.get("peak_rss_launcher_mib", ""), r.get("peak_rss_worker_mib", ""),
                  r.get("recovered_exactly", ""), r.get("planted_clusters", "")] for r in runs])
    plot(json.loads((RESULTS / f"{args.name}.json").read_text()), RESULTS / f"{args.name}.png")
    return {"runs": runs}


if __name__ == "__main__":
    main()
