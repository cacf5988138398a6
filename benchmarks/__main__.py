"""`make bench`: every benchmark in turn; tables on stdout, results in benchmarks/results/*.json."""

from benchmarks import ceiling, dedup, engines, generation, iteration, judge

if __name__ == "__main__":
    generation.main([])
    engines.main([])  # OpenVINO's row needs OPTIMUM_CLI (the Makefile's bench target sets it)
    judge.main([])
    dedup.main([])
    ceiling.main([])  # reads generation's result for the fraction of the ceiling reached
    iteration.main(["--compare-generate-at", "f8d32f2"])  # f8d32f2: the last revision on transformers' generate
