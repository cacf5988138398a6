"""The fast decoding path computes what the plain transformers path computes."""

import torch
from transformers import TopPLogitsWarper

from transforms.generation.decoding import _common_prefix, decode
from transforms.generation.hf_generation import RowSampler, SamplingParams

TEXTS = ["Say hello.", "Write a long paragraph about the sea and its many moods.", "Count to three.",
         "Say hello.", "Describe a quiet forest at dawn in detail.", "Say hello."]


def encode(tokenizer, text):
    ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                        tokenize=True, return_dict=False)
    return list(ids["input_ids"]) if hasattr(ids, "keys") else list(ids)


def plain_greedy(model, prompt, max_new_tokens):
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt]), max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=0)
    return out[0, len(prompt):].tolist()


def test_greedy_equals_plain_generate_with_shared_prefix_repeated_prompts_and_rows_ending(varied_model):
    model, tokenizer = varied_model
    prompts = [encode(tokenizer, t) for t in TEXTS]
    assert _common_prefix(prompts) > 10  # the chat template's system prompt is shared and computed once
    plain = [plain_greedy(model, p, 12) for p in prompts]
    # An end-of-sequence id that one row produces mid-way, so rows leave the batch at different steps.
    eos = plain[0][1]
    expected = [row[: row.index(eos) + 1] if eos in row else row for row in plain]
    assert len({len(e) for e in expected}) > 1, "the fixture should end rows at different steps"
    for group_size in (1, 2, 8):
        got = decode(model, prompts, RowSampler(SamplingParams(0.0, max_new_tokens=12), range(len(prompts))), 12,
                     {eos}, tokenizer.pad_token_id, prefill_group_size=group_size)
        assert got == expected


def test_prompts_without_a_shared_prefix(varied_model):
    model, tokenizer = varied_model
    prompts = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]
    got = decode(model, prompts, RowSampler(SamplingParams(0.0), range(3)), 6, {-1}, tokenizer.pad_token_id)
    expected = [plain_greedy(model, p, 6) for p in prompts]
    assert got == expected and len({tuple(e) for e in expected}) == 3


def kept(scores):
    return torch.isfinite(scores)


def test_nucleus_among_candidates_keeps_what_the_full_sort_keeps(monkeypatch):
    torch.manual_seed(0)
    logits = torch.randn(64, 5000) * torch.linspace(0.5, 6.0, 64)[:, None]  # flat to peaked rows
    sampling = SamplingParams(temperature=0.8, top_p=0.9)
    reference = TopPLogitsWarper(0.9)(None, logits / 0.8)
    for candidates in (5000, 300, 20):  # 20: most rows need the full-vocabulary fallback
        monkeypatch.setattr(RowSampler, "NUCLEUS_CANDIDATES", candidates)
        draws = torch.stack([RowSampler(sampling, range(64))(logits) for _ in range(30)])
        inside = kept(reference).gather(1, draws.T)
        assert bool(inside.all()), f"{candidates} candidates: a token outside the nucleus was drawn"
    assert int(kept(reference).sum(-1).max()) > 20  # the fallback was needed


def test_sampling_follows_the_filtered_distribution():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    sampler = RowSampler(SamplingParams(temperature=1.0, top_p=0.85), [7])
    counts = torch.bincount(torch.cat([sampler(logits) for _ in range(4000)]), minlength=4).float() / 4000
    # top-p 0.85 keeps the tokens with less than 0.85 ranked above them: 0.5, 0.3, 0.15 (renormalised)
    assert counts[3] == 0
    assert torch.allclose(counts[:3], torch.tensor([0.5, 0.3, 0.15]) / 0.95, atol=0.03)
