"""Loading and saving causal LMs: local paths only, safetensors only, no remote code."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

WEIGHTS = "model.safetensors"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def model_sha256(model_dir: str | Path) -> str:
    """Hash of a model folder's weights: identifies the model revision in every record."""
    weights = sorted(Path(model_dir).glob("*.safetensors"))
    if not weights:
        raise FileNotFoundError(f"{model_dir}: no .safetensors weights (pickle checkpoints are not loaded)")
    digest = hashlib.sha256()
    for w in weights:
        digest.update(sha256_file(w).encode())
    return digest.hexdigest()


def load_causal_lm(model_dir: str | Path, *, dtype: str = "float32"):
    """Returns (model, tokenizer) from a local folder, refusing anything but safetensors."""
    from transformers import AutoModelForCausalLM

    return _load_local(AutoModelForCausalLM, model_dir, dtype)


def load_sequence_classifier(model_dir: str | Path, *, dtype: str = "float32"):
    """Returns (reward model, tokenizer) from a local folder, refusing anything but safetensors."""
    from transformers import AutoModelForSequenceClassification

    model, tokenizer = _load_local(AutoModelForSequenceClassification, model_dir, dtype)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id  # needed to find each row's last token
    return model, tokenizer


def load_encoder(model_dir: str | Path, *, dtype: str = "float32"):
    """Returns (encoder, tokenizer), e.g. a sentence-embedding model, from a local safetensors folder."""
    from transformers import AutoModel

    return _load_local(AutoModel, model_dir, dtype)


def _load_local(model_class, model_dir: str | Path, dtype: str):
    import torch
    from transformers import AutoTokenizer

    model_dir = str(model_dir)
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"model folder not found: {model_dir}")
    model_sha256(model_dir)  # fails clearly when no safetensors are present
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True, trust_remote_code=False)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = model_class.from_pretrained(
        model_dir, local_files_only=True, trust_remote_code=False, use_safetensors=True,
        dtype=getattr(torch, dtype),
    )
    model.eval()
    return model, tokenizer


def save_atomically(model, tokenizer, out_dir: str | Path) -> None:
    """Saves weights and tokenizer to a sibling temp folder, then renames it into place."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        os.chmod(staging, 0o755)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def convert_gguf(gguf_path: str | Path, out_dir: str | Path) -> None:
    """Dequantizes a GGUF checkpoint into a fresh float32 model saved as safetensors.

    A GGUF-loaded model refuses save_pretrained, so its weights move into a model built from the
    same config without the quantization config.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    kwargs = dict(gguf_file=gguf_path.name, local_files_only=True, trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kwargs)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    save_atomically(fresh, tokenizer, out_dir)
