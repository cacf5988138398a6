"""Each candidate with its prompt, joined by prompt id (CoGroupByKey): a worker holds one prompt and its candidates
at a time, never every prompt."""

from __future__ import annotations

import apache_beam as beam


def _pairs(joined):
    _, grouped = joined
    prompt = next(iter(grouped["prompt"]), None)
    for candidate in grouped["candidate"]:
        yield candidate, prompt


class WithPrompts(beam.PTransform):
    """(candidates, prompts) -> (candidate, its prompt, or None when no prompt has its prompt_id)."""

    def expand(self, inputs):
        candidates, prompts = inputs
        return (
            {"candidate": candidates | "KeyCandidates" >> beam.Map(lambda c: (c["prompt_id"], c)),
             "prompt": prompts | "KeyPrompts" >> beam.Map(lambda p: (p["prompt_id"], p))}
            | "JoinPrompts" >> beam.CoGroupByKey()
            | "Pairs" >> beam.FlatMap(_pairs)
        )
