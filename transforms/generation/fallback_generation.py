"""Decoding through transformers' own `model.generate`, for architectures the custom loop
(decoding.py) is not verified for: the model's own attention and cache, so sliding windows,
soft-capping and the like are honoured.

The result is what `decoding.decode` returns, under the same contract. Each token is chosen by the
same `RowSampler` (a logits processor leaves only its choice, and greedy search takes it). Greedy
rows run together in one padded batch; a sampled row runs alone with its own generator, so its
text depends on the model, its prompt, its seed and the sampling params, never on the rows beside
it. The model folder's generation_config.json is overridden (`NEUTRAL`): as in the custom loop, only
the params' sampling shapes a candidate.
"""

from __future__ import annotations

from typing import Sequence

# Every generate setting that adds a logits processor or a stopping rule, at the value that adds none,
# and the plain tensor of sequences as the result; passed as arguments, they override the model's
# generation_config.json, which fills whatever is left unset.
NEUTRAL = dict(do_sample=False, num_beams=1, num_return_sequences=1, return_dict_in_generate=False, min_length=0,
               min_new_tokens=None, repetition_penalty=1.0, encoder_repetition_penalty=1.0, no_repeat_ngram_size=0,
               encoder_no_repeat_ngram_size=0, bad_words_ids=None, sequence_bias=None, guidance_scale=None,
               forced_bos_token_id=None, forced_eos_token_id=None, remove_invalid_values=False,
               exponential_decay_length_penalty=None, suppress_tokens=None, begin_suppress_tokens=None,
               max_time=None, stop_strings=None, watermarking_config=None)


def _only_the_choice(choose_next):
    """A logits processor keeping only the token `choose_next(scores)` picks for each row."""
    import torch
    from transformers import LogitsProcessor

    class OnlyTheChoice(LogitsProcessor):
        def __call__(self, input_ids, scores):
            chosen = choose_next(scores)
            return torch.full_like(scores, float("-inf")).scatter_(-1, chosen[:, None], 0.0)

    return OnlyTheChoice()


def fallback_decode(model, prompts: Sequence[Sequence[int]], seeds: Sequence[int], sampler, greedy: bool,
                    max_new_tokens: int, eos_ids: set[int], pad_id: int) -> list[list[int]]:
    """Up to max_new_tokens new tokens per prompt, ending with its first end-of-sequence token if any.

    `sampler(seeds)` is the next-token chooser (a RowSampler) for rows with those seeds; `greedy`
    lets the rows share one batch.
    """
    import torch

    eos = sorted(i for i in eos_ids if i is not None)
    batches = [list(range(len(prompts)))] if greedy else [[row] for row in range(len(prompts))]
    outputs: list[list[int]] = [[] for _ in prompts]
    for rows in batches:
        width = max(len(prompts[r]) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):  # left-padded, as generate expects of a decoder-only model
            ids[i, width - len(prompts[r]):] = torch.tensor(list(prompts[r]), dtype=torch.long)
            mask[i, width - len(prompts[r]):] = 1
        choose_next = _only_the_choice(sampler([seeds[r] for r in rows]))
        with torch.inference_mode():
            out = model.generate(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                                 logits_processor=[choose_next], max_new_tokens=max_new_tokens, eos_token_id=eos,
                                 pad_token_id=pad_id, **NEUTRAL)
        for i, r in enumerate(rows):
            tokens = out[i, width:].tolist()
            stop_at = next((p for p, t in enumerate(tokens) if t in eos_ids), None)
            outputs[r] = tokens if stop_at is None else tokens[: stop_at + 1]  # after it: padding of a shared batch
    return outputs
