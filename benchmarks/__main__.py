"""`make bench`: every benchmark in turn; tables on stdout, results in benchmarks/results/*.json."""

from benchmarks import ceiling, dedup, evaluation, generation, iteration, judge

if __name__ == "__main__":
    generation.main([])
    judge.main([])
    dedup.main([])
    ceiling.main([])  # reads generation's result for the fraction of the ceiling reached
    evaluation.main([])
    iteration.main([])
