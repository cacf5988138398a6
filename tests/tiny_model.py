"""A tiny random-weight Llama with SmolLM2's real tokenizer, saved like a real model folder."""

from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_FIXTURE = Path(__file__).parent / "fixtures" / "tokenizer"


def build_tiny_model(out_dir: str | Path, seed: int = 0, initializer_range: float = 0.02) -> Path:
    """A larger initializer_range gives less uniform next-token distributions (varied greedy text)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_FIXTURE)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True, initializer_range=initializer_range,
    )
    model = LlamaForCausalLM(config)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    for item in TOKENIZER_FIXTURE.iterdir():
        shutil.copy(item, out_dir / item.name)
    return out_dir
