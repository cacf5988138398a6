"""Loading and saving models: local paths only; safetensors and no custom code unless the params
(`security.*`, carried here as a LoadPolicy) explicitly allow pickle checkpoints or remote code."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from transforms.io import faults
from transforms.io.staging import staged_folder

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass(frozen=True)
class LoadPolicy:
    trust_remote_code: bool = False  # run Python code shipped in a model folder (config.json auto_map)
    allow_pickle: bool = False  # load pickle checkpoints (.bin, .pt, ...), which can run code when read


class ModelRefused(ValueError):
    pass


_LOCAL_COPIES: dict[str, str] = {}


def local_model_dir(model_dir: str | Path) -> str:
    """The model folder on local disk: a local path as it is; a remote one (gs://, s3://, ...) is
    copied once per process through Beam's FileSystems, so Dataflow workers read models from GCS."""
    model_dir = str(model_dir)
    if "://" not in model_dir:
        return model_dir
    if model_dir not in _LOCAL_COPIES:
        from apache_beam.io.filesystem import CompressionTypes
        from apache_beam.io.filesystems import FileSystems

        files = FileSystems.match([FileSystems.join(model_dir, "*")])[0].metadata_list
        if not files:
            raise FileNotFoundError(f"model folder not found: {model_dir}")
        target = tempfile.mkdtemp(prefix="selfsift-model-")
        for entry in files:  # model folders are flat
            name = FileSystems.split(entry.path)[1]
            with FileSystems.open(entry.path, compression_type=CompressionTypes.UNCOMPRESSED) as src, \
                    open(os.path.join(target, name), "wb") as dst:
                shutil.copyfileobj(src, dst)
        _LOCAL_COPIES[model_dir] = target
    return _LOCAL_COPIES[model_dir]


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def pickle_checkpoints(model_dir: str | Path) -> list[Path]:
    return sorted(p for p in Path(model_dir).iterdir() if p.suffix in PICKLE_SUFFIXES)


def model_sha256(model_dir: str | Path) -> str:
    """Hash of a model folder's weights: identifies the model revision in every record."""
    model_dir = local_model_dir(model_dir)
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"model folder not found: {model_dir}")
    weights = sorted(Path(model_dir).glob("*.safetensors")) or pickle_checkpoints(model_dir)
    if not weights:
        raise FileNotFoundError(f"{model_dir}: no model weights (.safetensors) found")
    digest = hashlib.sha256()
    for w in weights:
        digest.update(sha256_file(w).encode())
    return digest.hexdigest()


def load_causal_lm(model_dir: str | Path, *, dtype: str = "float32", policy: LoadPolicy = LoadPolicy()):
    """Returns (model, tokenizer) from a local folder."""
    from transformers import AutoModelForCausalLM

    return _load_local(AutoModelForCausalLM, model_dir, dtype, policy)


def load_sequence_classifier(model_dir: str | Path, *, dtype: str = "float32", policy: LoadPolicy = LoadPolicy()):
    """Returns (reward model, tokenizer) from a local folder."""
    from transformers import AutoModelForSequenceClassification

    model, tokenizer = _load_local(AutoModelForSequenceClassification, model_dir, dtype, policy)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id  # needed to find each row's last token
    return model, tokenizer


def load_encoder(model_dir: str | Path, *, dtype: str = "float32", policy: LoadPolicy = LoadPolicy()):
    """Returns (encoder, tokenizer), e.g. a sentence-embedding model, from a local folder."""
    from transformers import AutoModel

    return _load_local(AutoModel, model_dir, dtype, policy)


def check_loadable(model_dir: str | Path, policy: LoadPolicy) -> bool:
    """Refuses a folder that needs what the policy does not allow; returns whether it is safetensors."""
    model_dir = local_model_dir(model_dir)
    model_sha256(model_dir)  # fails clearly when the folder or its weights are missing
    custom = {}
    for name in ("config.json", "tokenizer_config.json"):
        path = Path(model_dir, name)
        if path.is_file():
            custom.update(json.loads(path.read_text()).get("auto_map") or {})
    if custom and not policy.trust_remote_code:
        raise ModelRefused(f"{model_dir}: the model asks to run its own Python code (auto_map: "
                           f"{', '.join(sorted(custom))}); it is not run unless params.yaml sets "
                           f"security.trust_remote_code: true, which you should do only for code you have read")
    if any(Path(model_dir).glob("*.safetensors")):
        return True
    if not policy.allow_pickle:
        names = ", ".join(p.name for p in pickle_checkpoints(model_dir))
        raise ModelRefused(f"{model_dir}: only pickle checkpoints ({names}), which can run code when loaded; convert "
                           f"them to safetensors, or set security.allow_pickle_checkpoints: true if you trust them")
    return False


def _load_local(model_class, model_dir: str | Path, dtype: str, policy: LoadPolicy):
    import torch
    from transformers import AutoTokenizer

    model_dir = local_model_dir(model_dir)
    safetensors = check_loadable(model_dir, policy)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True,
                                              trust_remote_code=policy.trust_remote_code)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = model_class.from_pretrained(
        model_dir, local_files_only=True, trust_remote_code=policy.trust_remote_code, use_safetensors=safetensors,
        dtype=getattr(torch, dtype),
    )
    model.eval()
    return model, tokenizer


def save_atomically(model, tokenizer, out_dir: str | Path, finish=None) -> None:
    """Saves weights and tokenizer to a sibling temp folder, calls `finish(folder)` to add files such
    as a summary, then renames the folder into place: a killed save never leaves a half model.
    A remote folder (gs://...) is saved locally first and uploaded file by file, summary last."""
    if "://" in str(out_dir):
        local = Path(tempfile.mkdtemp(prefix="selfsift-save-"))
        try:
            save_atomically(model, tokenizer, local / "model", finish)
            _upload_model(local / "model", str(out_dir))
        finally:
            shutil.rmtree(local, ignore_errors=True)
        return
    with staged_folder(out_dir) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        if finish is not None:
            faults.reached("before_manifest")
            finish(staging)
        faults.reached("mid_write")


def _upload_model(local: Path, remote: str) -> None:
    from transforms.io.parquet_io import write_atomically

    # A reader that finds the summary (written by `finish`) finds a complete model.
    for path in sorted(local.iterdir(), key=lambda p: p.name == "selfsift_model.json"):
        write_atomically(f"{remote.rstrip('/')}/{path.name}", path.read_bytes())
    _LOCAL_COPIES.pop(remote, None)


def convert_gguf(gguf_path: str | Path, out_dir: str | Path, finish=None) -> None:
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
    save_atomically(fresh, tokenizer, out_dir, finish)
