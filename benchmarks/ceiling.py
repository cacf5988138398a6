"""The ceiling: what this machine's arithmetic and memory allow the generate stage.

- matmul GFLOP/s (2048 x 2048, float32 and bfloat16) with torch;
- memory bandwidth from copying a 1 GiB tensor;
- the model's FLOPs per generated token (2 per weight used; the embedding lookup is free, the tied
  output projection is not);
- compute-bound ceiling (tokens/s = GFLOP/s / GFLOP per token, at any batch large enough to keep
  the matmuls busy) and memory-bound ceiling at batch 1 (every step reads all weights once);
- the fraction of the compute ceiling the generate stage reached in benchmarks/results/generation.json.

Run: python -m benchmarks.ceiling (after benchmarks.generation)
"""

from __future__ import annotations

import json
import time

from benchmarks.common import BASE_MODEL, RESULTS, print_table, write_result

STAGE_PATH = "selfsift generate handler (bfloat16, the stage default)"
FLOAT32_PATH = "selfsift generate handler (float32)"


def matmul_gflops(dtype, size: int = 2048, repeats: int = 20) -> float:
    import torch

    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def copy_bandwidth_gbs(gib: float = 1.0, repeats: int = 5) -> float:
    """Bytes read plus bytes written per second by a large tensor copy."""
    import torch

    src = torch.ones(int(gib * 2**30 / 4), dtype=torch.float32)
    dst = torch.empty_like(src)
    dst.copy_(src)
    start = time.perf_counter()
    for _ in range(repeats):
        dst.copy_(src)
    return 2 * src.numel() * 4 * repeats / (time.perf_counter() - start) / 1e9


def model_costs(model_dir: str) -> dict:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    params = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    tied = bool(getattr(config, "tie_word_embeddings", False))
    # Per token: every matrix in the layers plus the output projection; the input embedding is a lookup.
    matmul_weights = params - embedding + (embedding if tied else 0)
    return {"parameters": params, "matmul_weights_per_token": matmul_weights,
            "gflop_per_token": 2 * matmul_weights / 1e9, "weight_bytes_bf16": 2 * params, "weight_bytes_fp32": 4 * params}


def main(argv=None) -> dict:
    import torch

    costs = model_costs(BASE_MODEL)
    fp32, bf16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    bandwidth = copy_bandwidth_gbs()
    measured = {}
    generation_file = RESULTS / "generation.json"
    if generation_file.exists():
        paths = json.loads(generation_file.read_text())["paths"]
        measured = {dtype: paths[name]["tokens_per_second"] for dtype, name in
                    (("bfloat16", STAGE_PATH), ("float32", FLOAT32_PATH)) if name in paths}
    rows = []
    ceilings = {}
    for dtype, gflops, weight_bytes in (("float32", fp32, costs["weight_bytes_fp32"]),
                                        ("bfloat16", bf16, costs["weight_bytes_bf16"])):
        compute = gflops / costs["gflop_per_token"]
        memory = bandwidth * 1e9 / weight_bytes
        reached = measured.get(dtype)
        ceilings[dtype] = {"matmul_gflops": gflops, "compute_bound_tokens_per_second": compute,
                           "memory_bound_batch1_tokens_per_second": memory, "generate_stage_tokens_per_second": reached,
                           "fraction_of_compute_ceiling": reached / compute if reached else None}
        rows.append([dtype, gflops, compute, memory, reached or "-",
                     f"{reached / compute:.0%}" if reached else "-"])
    print_table(f"Ceilings: {costs['gflop_per_token']:.3f} GFLOP per token, copy bandwidth {bandwidth:.1f} GB/s",
                ["dtype", "matmul GFLOP/s", "compute-bound tok/s", "memory-bound tok/s (batch 1)",
                 "generate stage tok/s", "of compute ceiling"], rows)
    result = {"model": costs, "copy_bandwidth_gbs": bandwidth, "ceilings": ceilings}
    write_result("ceiling", result)
    return result


if __name__ == "__main__":
    main()
