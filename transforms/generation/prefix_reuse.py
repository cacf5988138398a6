"""Last-token logits for many inputs that share prefixes, computing each distinct prefix once.

A judge's rubric prompts for the K candidates of one prompt are identical up to the response. The
prefix's KV cache is computed once; each input then runs only its own remainder, one at a time
(unpadded, so an input's logits never depend on what else is in the batch), and the cache is cut
back to the prefix before the next. Inputs go to the model's device; logits come back to the CPU.
"""

from __future__ import annotations

from typing import Iterator

from transforms.generation.decoding import attention_layers, kv_states


def last_logits_sharing_prefixes(model, inputs: dict[int, list[int]], prefix_lengths: dict[int, int]
                                 ) -> Iterator[tuple[int, object]]:
    """Yields (key, float32 logits after the input's last token, on the CPU) for every input.

    `prefix_lengths[key]` tokens of `inputs[key]` may be shared with other inputs (0: none); the
    input keeps at least its last token outside the prefix.
    """
    import torch
    from transformers import DynamicCache

    groups: dict[tuple, list[int]] = {}
    for key, ids in inputs.items():
        shared = max(0, min(prefix_lengths.get(key, 0), len(ids) - 1))
        groups.setdefault(tuple(ids[:shared]), []).append(key)
    with torch.inference_mode():
        for prefix, keys in sorted(groups.items(), key=lambda g: g[1][0]):
            cache = DynamicCache(config=model.config)
            if prefix:
                model(input_ids=torch.tensor([prefix], device=model.device), cache=cache, use_cache=True,
                      logits_to_keep=1)
            for key in keys:
                rest = inputs[key][len(prefix):]
                logits = model(input_ids=torch.tensor([rest], device=model.device), cache=cache, use_cache=True,
                               logits_to_keep=1).logits[0, -1].float().cpu()
                for layer in attention_layers(cache):
                    if layer.is_initialized:
                        cached_keys, cached_values = kv_states(layer)
                        layer.keys, layer.values = cached_keys[:, :, : len(prefix)], cached_values[:, :, : len(prefix)]
                yield key, logits
