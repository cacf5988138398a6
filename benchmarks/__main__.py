"""`make bench`: every benchmark in turn; tables on stdout, results in benchmarks/results/*.json."""

from benchmarks import (
    ceiling,
    dedup,
    engines,
    evaluation,
    finetune,
    finetune_heldout,
    fresh_clone,
    generation,
    iteration,
    judge,
    scale,
)

if __name__ == "__main__":
    generation.main([])
    engines.main([])  # OpenVINO's row needs OPTIMUM_CLI (the Makefile's bench target sets it)
    judge.main([])
    dedup.main([])
    scale.main([])  # curate at 100k, 300k and 1M candidates: about an hour and a half
    ceiling.main([])  # reads generation's result for the fraction of the ceiling reached
    finetune.main([])
    finetune_heldout.main([])
    evaluation.main([])
    iteration.main([])
    fresh_clone.main([])  # last: `make repro` from a clone of the committed HEAD, about half an hour
