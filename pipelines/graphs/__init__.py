"""Beam graphs that more than one stage builds: a generator's handler and lineage, judging a folder of
candidates, and revising failed candidates (which curate runs when `revise.enabled`)."""
