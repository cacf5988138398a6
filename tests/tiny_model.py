"""Tiny Llamas with SmolLM2's real tokenizer, saved like a real model folder: a random one, and one
fitted in seconds to answer with a fixed set of answers (the end-to-end task, tests/tiny_repo.py)."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Sequence

TOKENIZER_FIXTURE = Path(__file__).parent / "fixtures" / "tokenizer"
SIZE = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=2048, tie_word_embeddings=True)


def _config(tokenizer, vocab_size: int, initializer_range: float = 0.02, padding: bool = True):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab_size, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id if padding else None, initializer_range=initializer_range,
                       **SIZE)


def _save(model, out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    for item in TOKENIZER_FIXTURE.iterdir():
        shutil.copy(item, out_dir / item.name)
    return out_dir


def build_tiny_model(out_dir: str | Path, seed: int = 0, initializer_range: float = 0.02) -> Path:
    """A larger initializer_range gives less uniform next-token distributions (varied greedy text)."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_FIXTURE)
    return _save(LlamaForCausalLM(_config(tokenizer, len(tokenizer), initializer_range)), out_dir)


def _chat_ids(tokenizer, prompt: str) -> list[int]:
    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                        tokenize=True, return_dict=False)
    return list(ids["input_ids"]) if hasattr(ids, "keys") else list(ids)


def build_fitted_model(out_dir: str | Path, prompts: Sequence[str], answers: Sequence[tuple[str, bool]],
                       seed: int = 0, steps: int = 120) -> Path:
    """A tiny model that answers each of `prompts` with one of `answers`, drawn with the share each
    has in the list (list an answer twice to double its share). An answer is (text, ends): one that
    does not end is never followed by the end-of-turn token, so it runs into any token budget.

    Trained exactly and cheaply: only the tokens of the chat template and of the answers ("used")
    get embeddings; every other token's embedding is zero, so its logit is exactly 0, and the
    softmax over the 49k-token vocabulary is the softmax over the used tokens plus a constant. A
    compact model over the used tokens is trained with that constant, then spread onto the full
    vocabulary, where it computes the same logits. Prompts whose words are all unused look alike to
    it but for their length (the answers do not depend on the prompt). Raises if, for any prompt,
    an answer's probability under the saved model is less than half its share.
    """
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_FIXTURE)
    eos = tokenizer.eos_token_id
    answer_ids = [tokenizer(text, add_special_tokens=False)["input_ids"] + ([eos] if ends else [])
                  for text, ends in answers]
    shares = Counter(map(tuple, answer_ids))  # each distinct answer once, weighted by its share
    used = sorted(set(_chat_ids(tokenizer, "")) | {t for ids in answer_ids for t in ids})
    compact_of = {token: i + 1 for i, token in enumerate(used)}  # 0 stands for every other token (zero embedding)
    rest = torch.tensor(float(len(tokenizer) - len(used))).log()  # logsumexp of the other tokens' zero logits

    def compact(ids):
        return tuple(compact_of.get(t, 0) for t in ids)

    looks = {}  # one prompt for each way a prompt can look to the model
    for prompt in prompts:
        looks.setdefault(compact(_chat_ids(tokenizer, prompt)), prompt)
    rows = [(prefix, compact(ids), count) for prefix in looks for ids, count in shares.items()]
    length = max(len(p) + len(a) for p, a, _ in rows)
    inputs = torch.zeros(len(rows), length, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    labels = torch.zeros(len(rows), length, dtype=torch.long)
    weights = torch.zeros(len(rows), length)
    for r, (prefix, answer, count) in enumerate(rows):
        end = len(prefix) + len(answer)
        inputs[r, :end] = torch.tensor(prefix + answer)
        mask[r, :end] = 1
        labels[r, len(prefix) - 1 : end - 1] = torch.tensor(answer)  # each token is predicted at the one before it
        weights[r, len(prefix) - 1 : end - 1] = count
    supervised = weights > 0
    labels, weights = labels[supervised], weights[supervised] / weights[supervised].sum()

    model = LlamaForCausalLM(_config(tokenizer, len(used) + 1, padding=False))
    embeddings = model.get_input_embeddings().weight  # tied: also the output layer
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(steps):
        with torch.no_grad():
            embeddings[0].zero_()
        logits = model.lm_head(model.model(input_ids=inputs, attention_mask=mask).last_hidden_state[supervised])
        logits = torch.cat([rest.expand(len(logits), 1), logits[:, 1:]], dim=-1)  # slot 0: all the other tokens
        loss = -(logits.log_softmax(-1).gather(-1, labels[:, None]).squeeze(-1) * weights).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    full = LlamaForCausalLM(_config(tokenizer, len(tokenizer)))
    spread = torch.zeros(len(tokenizer), SIZE["hidden_size"])
    spread[used] = embeddings.detach()[1:]
    layers = {k: v for k, v in model.state_dict().items() if k not in ("model.embed_tokens.weight", "lm_head.weight")}
    full.load_state_dict({**layers, "model.embed_tokens.weight": spread}, strict=False)
    full.tie_weights()
    full.eval()
    for prompt in looks.values():
        prefix = _chat_ids(tokenizer, prompt)
        for ids, count in shares.items():
            with torch.no_grad():
                logits = full(torch.tensor([prefix + list(ids)])).logits[0, len(prefix) - 1 : -1]
            probability = logits.log_softmax(-1).gather(-1, torch.tensor(ids)[:, None]).sum().exp().item()
            if probability < count / len(answer_ids) / 2:
                raise RuntimeError(f"the fitted model answers {prompt!r} with {tokenizer.decode(list(ids))!r} at "
                                   f"probability {probability:.3f}, under half its share {count / len(answer_ids):.3f}")
    return _save(full, out_dir)


def _is_punctuation(tokenizer, token: int) -> bool:
    text = tokenizer.decode([token]).strip()
    return bool(text) and all(not c.isalnum() for c in text)


def bag_of_tokens(tokenizer, text: str) -> Counter:
    """The text as build_bag_of_tokens_encoder sees it: its tokens counted, punctuation as one."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return Counter("<punctuation>" if _is_punctuation(tokenizer, t) else t for t in ids)


def build_bag_of_tokens_encoder(out_dir: str | Path, texts: Sequence[str]) -> Path:
    """A sentence encoder whose mean-pooled embedding of a text points along its bag of tokens
    (`bag_of_tokens`), so the cosine of two texts is the cosine of their token counts: like a real
    sentence encoder it scores a rewording that keeps most words, or changes only punctuation, close
    to the original, and unrelated texts far apart; unlike one, its similarities are known exactly.

    Each word token of `texts` has its own axis (a one-hot embedding) and their punctuation tokens
    share one; any other token embeds as zero. Its one layer adds nothing, and RMSNorm gives every
    one-hot the same length, so the pooled vector is proportional to the token counts.
    """
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_FIXTURE)
    tokens = sorted({t for text in texts for t in tokenizer(text, add_special_tokens=False)["input_ids"]})
    axes = sorted({"<punctuation>" if _is_punctuation(tokenizer, t) else t for t in tokens}, key=str)
    step = 2 * SIZE["num_attention_heads"]
    width = -(-len(axes) // step) * step  # whole attention heads of even size
    config = _config(tokenizer, len(tokenizer))
    config.update({"hidden_size": width, "intermediate_size": width, "num_hidden_layers": 1})
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        embeddings = torch.zeros(len(tokenizer), width)
        for token in tokens:
            embeddings[token, axes.index("<punctuation>" if _is_punctuation(tokenizer, token) else token)] = 1.0
        model.get_input_embeddings().weight.copy_(embeddings)
        for layer in model.model.layers:  # the layer's residual branches add nothing
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    return _save(model, out_dir)
