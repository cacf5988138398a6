"""What reproduces bit for bit, measured: generate@iter-001 (the default params) in two fresh clones,
on this CPU and on this CPU made to behave like one without AVX-512 and AMX, in bfloat16 and float32.

Each clone is `git clone` of the given revision, sharing this checkout's virtualenv (same library
versions) and the model wheel's GGUF. "Another CPU" is emulated by capping the instruction sets
PyTorch's own kernels, oneDNN and MKL may use (`EMULATED_OLDER_CPU`): the kernels then take other
code paths and sum in another order, as they would on a machine without those instructions.

    python -m benchmarks.reproducibility [--revision HEAD] [--scratch /tmp/selfsift-repro] [--train-size N]

`--train-size` builds fewer train prompts than the default, for a quicker run of the same code paths.

Writes benchmarks/results/reproducibility.json: per variant the sha256 of each candidate shard, and
per comparison how many shards and candidate texts differ.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from benchmarks.common import GGUF, print_table, stopwatch, write_result

REPO = Path(__file__).resolve().parent.parent
EMULATED_OLDER_CPU = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
# (variant, clone, generate.dtype, environment)
VARIANTS = [
    ("bfloat16, clone A", "A", "bfloat16", {}),
    ("bfloat16, clone B", "B", "bfloat16", {}),
    ("bfloat16, clone B, emulated older CPU", "B", "bfloat16", EMULATED_OLDER_CPU),
    ("float32, clone A", "A", "float32", {}),
    ("float32, clone B, emulated older CPU", "B", "float32", EMULATED_OLDER_CPU),
]
COMPARISONS = [
    ("two fresh clones, same CPU, bfloat16", "bfloat16, clone A", "bfloat16, clone B"),
    ("bfloat16: this CPU vs emulated older CPU", "bfloat16, clone B", "bfloat16, clone B, emulated older CPU"),
    ("float32: this CPU vs emulated older CPU", "float32, clone A", "float32, clone B, emulated older CPU"),
]


def fresh_clone(revision: str, folder: Path) -> Path:
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(folder)], check=True)
    subprocess.run(["git", "checkout", "--quiet", revision], cwd=folder, check=True)
    (folder / ".venv").symlink_to(REPO / ".venv")
    (folder / GGUF).parent.mkdir(parents=True)
    (folder / GGUF).symlink_to(REPO / GGUF)
    return folder


def selfsift(clone: Path, env: dict, *argv: str) -> None:
    bin_dir = str(REPO / ".venv" / "bin")
    full_env = {**os.environ, **env, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    subprocess.run([f"{bin_dir}/selfsift", *argv], cwd=clone, env=full_env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def candidates(folder: Path) -> dict:
    manifest = yaml.safe_load((folder / "manifest.json").read_text())
    texts = {row["candidate_id"]: row["text"] for shard in sorted(folder.glob("part-*.parquet"))
             for row in pq.read_table(shard, columns=["candidate_id", "text"]).to_pylist()}
    return {"shards": {s["file"]: s["sha256"] for s in manifest["shards"]}, "texts": texts}


def write_params(clone: Path, dtype: str, train_size: int | None) -> None:
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["generate"]["dtype"] = dtype
    if train_size:
        params["prompts"]["train_size"] = train_size
    (clone / f"params-{dtype}.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def generate(clone: Path, dtype: str, env: dict) -> dict:
    with stopwatch() as timing:
        selfsift(clone, env, "--params", f"params-{dtype}.yaml", "generate", "--iteration", "1")
    return {"seconds": round(timing["seconds"], 1), **candidates(clone / "data/candidates/iter-001")}


def compare(a: dict, b: dict) -> dict:
    return {"shards_differ": sum(a["shards"][f] != b["shards"].get(f) for f in a["shards"]),
            "shards": len(a["shards"]), "candidates": len(a["texts"]),
            "candidate_texts_differ": sum(a["texts"][c] != b["texts"].get(c) for c in a["texts"])}


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revision", default="HEAD")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/selfsift-repro"))
    parser.add_argument("--train-size", type=int, default=None, help="train prompts (default: params.yaml's)")
    args = parser.parse_args(argv)
    revision = subprocess.run(["git", "rev-parse", args.revision], cwd=REPO, check=True, capture_output=True,
                              text=True).stdout.strip()
    if args.scratch.exists():
        sys.exit(f"{args.scratch} exists; remove it or pass another --scratch")
    clones = {name: fresh_clone(revision, args.scratch / name) for name in ("A", "B")}
    for clone in clones.values():
        for dtype in ("bfloat16", "float32"):
            write_params(clone, dtype, args.train_size)
        selfsift(clone, {}, "--params", "params-bfloat16.yaml", "prepare-model")
        selfsift(clone, {}, "--params", "params-bfloat16.yaml", "prompts")
    runs = {}
    for variant, clone, dtype, env in VARIANTS:
        runs[variant] = generate(clones[clone], dtype, env)
        print(f"{variant}: {runs[variant]['seconds']} s", flush=True)
    comparisons = {name: compare(runs[a], runs[b]) for name, a, b in COMPARISONS}
    workspace = REPO / "data/candidates/iter-001"
    if not args.train_size and (workspace / "manifest.json").is_file():  # the committed run's, made in this checkout
        comparisons["clone A vs this checkout's committed run"] = compare(runs["bfloat16, clone A"], candidates(workspace))
    print_table("generate@iter-001, default params", ["comparison", "shards differ", "candidate texts differ"],
                [[name, f"{c['shards_differ']} of {c['shards']}", f"{c['candidate_texts_differ']} of {c['candidates']}"]
                 for name, c in comparisons.items()])
    result = {
        "revision": revision, "emulated_older_cpu": EMULATED_OLDER_CPU, "train_size": args.train_size or "default",
        "conditions": "fresh git clones sharing one virtualenv (same library versions) on one machine; default "
                      "params (generate batch settings included); wall seconds are for information only, the "
                      "machine was not kept quiet",
        "runs": {variant: {"dtype": dtype, "clone": clone, "env": env, "seconds": runs[variant]["seconds"],
                           "shards": runs[variant]["shards"]} for variant, clone, dtype, env in VARIANTS},
        "comparisons": comparisons,
    }
    write_result("reproducibility", result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
