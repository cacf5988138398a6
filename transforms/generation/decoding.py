"""Batched autoregressive decoding for the generate stage, built on transformers' model forward.

Where transformers' `generate` spends a CPU decode step (profiled on SmolLM2-135M, batch 32):
the scaled-dot-product kernel with grouped-query attention at query length 1 (~40 %), growing
the KV cache by concatenation (~15 %), and rows that already ended. This loop keeps the model's
own forward and removes those three:

- decode-step attention groups the query heads that share a key/value head and does two small
  matmuls, without repeating the key/value heads (prefill keeps transformers' SDPA);
- the KV cache is preallocated for prompt + max_new_tokens and written in place;
- a row that ends leaves the batch and the cache.

Everything runs on the model's device: cache, masks, positions, and the sampler's tokens.

The loop replaces the model's attention and lays its cache out its own way (a shared prefix, a
masked gap, explicit positions), so it is exact only for the architectures in VERIFIED_ARCHITECTURES
(the tests compare it with transformers' `generate`); any other generates through
fallback_generation.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import torch
    from transformers.cache_utils import Cache, DynamicLayer

ATTENTION = "selfsift_decode"

# config.model_type of the architectures this loop is verified for: causal attention over the whole
# context, rotary positions read from position_ids, no soft-capping, sinks or position bias. Close
# but left out: mistral and qwen2, whose configs can turn on a sliding window, which the cache's slot
# layout and the decode attention ignore.
VERIFIED_ARCHITECTURES = ("llama",)


def runs_custom_loop(model) -> bool:
    """Whether `decode` is exact for this model's architecture."""
    return model.config.model_type in VERIFIED_ARCHITECTURES


def _decode_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, heads, q_len, head_dim = query.shape
    groups = getattr(module, "num_key_value_groups", 1)
    if q_len != 1 or module.training or kwargs.get("position_bias") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scale = scaling if scaling is not None else head_dim ** -0.5
    grouped = query.reshape(batch, heads // groups, groups, head_dim)  # heads sharing a KV head are adjacent
    scores = torch.matmul(grouped, key.transpose(-1, -2)).float() * scale
    if attention_mask is not None:  # [batch, 1, 1, kv]: boolean (True attends) or additive
        mask = attention_mask[..., : key.shape[-2]]
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.float()
    out = torch.matmul(torch.softmax(scores, dim=-1).to(value.dtype), value)
    return out.reshape(batch, heads, 1, head_dim).transpose(1, 2).contiguous(), None


def use_decode_attention(model) -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(ATTENTION, _decode_attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, sdpa_mask)  # without one, a custom attention gets no mask
    if model.config._attn_implementation != ATTENTION:
        model.set_attn_implementation(ATTENTION)


def _preallocated_cache(num_layers: int, batch: int, capacity: int):
    from transformers.cache_utils import Cache, DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        """A DynamicLayer whose storage is allocated once for `capacity` positions and filled in place."""

        def lazy_initialization(self, key_states, value_states) -> None:
            import torch

            heads = key_states.shape[1]
            self.key_store = torch.zeros((batch, heads, capacity, key_states.shape[-1]), dtype=key_states.dtype,
                                         device=key_states.device)
            self.value_store = torch.zeros((batch, heads, capacity, value_states.shape[-1]),
                                           dtype=value_states.dtype, device=value_states.device)
            self.length = 0
            self.is_initialized = True

        def _expose(self) -> None:
            self.keys, self.values = self.key_store[:, :, : self.length], self.value_store[:, :, : self.length]

        def place(self, rows, slots: slice, keys, values) -> None:
            """Writes prefilled states for some rows; `keys` broadcasts over the rows."""
            if not self.is_initialized:
                self.lazy_initialization(keys, values)
            self.key_store[rows, :, slots] = keys
            self.value_store[rows, :, slots] = values
            self.length = max(self.length, slots.stop)
            self._expose()

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            end = self.length + key_states.shape[-2]
            if end > capacity:
                raise ValueError(f"KV cache capacity {capacity} exceeded ({end} positions)")
            self.key_store[:, :, self.length : end] = key_states
            self.value_store[:, :, self.length : end] = value_states
            self.length = end
            self._expose()
            return self.keys, self.values

        def batch_select_indices(self, indices) -> None:
            self.key_store, self.value_store = self.key_store[indices], self.value_store[indices]
            self._expose()

    return Cache(layers=[PreallocatedLayer() for _ in range(num_layers)])


def attention_layers(cache: Cache) -> list[DynamicLayer]:
    """The layers of a verified architecture's cache: each holds keys and values over the whole context."""
    from transformers.cache_utils import DynamicLayer

    layers = [layer for layer in cache.layers if isinstance(layer, DynamicLayer)]
    if len(layers) != len(cache.layers):
        raise TypeError("a cache with layers that hold no keys and values (not a verified architecture's)")
    return layers


def kv_states(layer: DynamicLayer) -> tuple[torch.Tensor, torch.Tensor]:
    """A filled layer's keys and values."""
    assert layer.keys is not None and layer.values is not None, "the layer is not filled"
    return layer.keys, layer.values


def _common_prefix(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix all prompts share, leaving each at least its last token."""
    shortest = min(len(p) for p in prompts)
    n = 0
    while n < shortest - 1 and all(p[n] == prompts[0][n] for p in prompts):
        n += 1
    return n


def _prefill(model, prompts: Sequence[Sequence[int]], cache, pad_id: int, group_size: int):
    """Fills the cache for every row and returns the logits after each prompt's last token, plus the
    attention mask and the position of each row's last token.

    The prefix all prompts share (the chat template's system prompt) is computed once; identical
    prompts (the K candidates of one prompt) are computed once; the distinct remainders run in
    groups of similar length, so little compute goes to padding. Slot layout per row: the shared
    prefix in [0, P), the row's remainder right-aligned to end at the widest prompt's end, a masked
    gap between; positions are explicit, so the gap changes nothing.
    """
    import torch
    from transformers import DynamicCache

    device = model.device
    shared = _common_prefix(prompts)
    width = max(len(p) for p in prompts)
    layers = cache.layers
    if shared:
        prefix_cache = DynamicCache(config=model.config)
        model(input_ids=torch.tensor([list(prompts[0][:shared])], device=device), cache=prefix_cache, use_cache=True,
              logits_to_keep=1)
        for layer, source in zip(layers, attention_layers(prefix_cache)):
            layer.place(slice(None), slice(0, shared), *kv_states(source))
    rows_of: dict[tuple, list[int]] = {}
    for row, prompt in enumerate(prompts):
        rows_of.setdefault(tuple(prompt[shared:]), []).append(row)
    distinct = sorted(rows_of, key=len)
    logits = torch.empty((len(prompts), model.config.vocab_size), dtype=torch.float32, device=device)
    for start in range(0, len(distinct), group_size):
        group = distinct[start : start + group_size]
        longest = max(len(g) for g in group)
        ids = torch.full((len(group), longest), pad_id, dtype=torch.long)
        mask = torch.zeros((len(group), shared + longest), dtype=torch.long)
        mask[:, :shared] = 1
        for r, rest in enumerate(group):
            ids[r, longest - len(rest):] = torch.tensor(rest, dtype=torch.long)
            mask[r, shared + longest - len(rest):] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp_(min=0)[:, shared:]
        group_cache = DynamicCache(config=model.config)
        if shared:
            for i, layer in enumerate(layers):
                group_cache.update(layer.key_store[:1, :, :shared].expand(len(group), -1, -1, -1).contiguous(),
                                   layer.value_store[:1, :, :shared].expand(len(group), -1, -1, -1).contiguous(), i)
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=group_cache, use_cache=True,
                    logits_to_keep=1).logits[:, -1].float()
        for r, rest in enumerate(group):
            rows = rows_of[rest]
            logits[rows] = out[r]
            for layer, source in zip(layers, attention_layers(group_cache)):
                keys, values = kv_states(source)
                layer.place(rows, slice(width - len(rest), width), keys[r, :, shared + longest - len(rest):],
                            values[r, :, shared + longest - len(rest):])
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    mask[:, :shared] = 1
    for row, prompt in enumerate(prompts):
        mask[row, width - (len(prompt) - shared):] = 1
    last_positions = torch.tensor([[len(ids) - 1] for ids in prompts], dtype=torch.long)
    return logits, mask.to(device), last_positions.to(device)


def decode(model, prompts: Sequence[Sequence[int]], choose_next, max_new_tokens: int, eos_ids: set[int],
           pad_id: int, prefill_group_size: int = 8) -> list[list[int]]:
    """Up to max_new_tokens new tokens per prompt, ending with its first end-of-sequence token if any.

    `choose_next(logits) -> tokens` picks each live row's next token and is told, through
    `choose_next.keep_rows(rows)`, which rows stay when some end.
    """
    import torch

    use_decode_attention(model)
    width = max(len(p) for p in prompts)
    cache = _preallocated_cache(model.config.num_hidden_layers, len(prompts), width + max_new_tokens)
    eos = torch.tensor(sorted(i for i in eos_ids if i is not None), dtype=torch.long, device=model.device)
    outputs: list[list[int]] = [[] for _ in prompts]
    alive = list(range(len(prompts)))
    with torch.inference_mode():
        logits, prompt_mask, positions = _prefill(model, prompts, cache, pad_id, prefill_group_size)
        mask = torch.cat([prompt_mask, prompt_mask.new_zeros((len(prompts), max_new_tokens))], dim=-1)
        for step in range(max_new_tokens):
            tokens = choose_next(logits)
            for row, token in zip(alive, tokens.tolist()):
                outputs[row].append(token)
            if step == max_new_tokens - 1:
                break
            going = ~torch.isin(tokens, eos)
            if not going.all():
                keep = going.nonzero().squeeze(-1)
                if keep.numel() == 0:
                    break
                alive = [alive[r] for r in keep.tolist()]
                choose_next.keep_rows(keep.tolist())
                cache.batch_select_indices(keep)
                tokens, mask, positions = tokens[keep], mask[keep], positions[keep]
            length = width + step + 1
            mask[:, length - 1] = 1
            positions = positions + 1
            logits = model(input_ids=tokens[:, None], attention_mask=mask[:, :length], position_ids=positions,
                           cache=cache, use_cache=True).logits[:, -1]
    return outputs
