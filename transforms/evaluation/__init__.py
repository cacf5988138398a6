"""Scoring a model's answers to the eval sets: the scorers, the metrics with intervals, paired comparisons."""
