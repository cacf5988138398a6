"""`make bench`: every benchmark in turn; tables on stdout, results in benchmarks/results/*.json."""

from benchmarks import ceiling, dedup, finetune, finetune_heldout, generation, iteration, judge

if __name__ == "__main__":
    generation.main([])
    judge.main([])
    dedup.main([])
    ceiling.main([])  # reads generation's result for the fraction of the ceiling reached
    finetune.main([])
    finetune_heldout.main([])
    iteration.main(["--compare-generate-at", "f8d32f2"])  # f8d32f2: the last revision on transformers' generate
