"""Loading and saving models: safetensors and no custom code unless the params (`security.*`, carried
here as a LoadPolicy) explicitly allow pickle checkpoints or remote code.

A model folder's summary (`selfsift_model.json`) lists every other file with its sha256. A local
folder is renamed into place whole, so it is used as it is. A remote folder (gs://...) is replaced
file by file, summary last (staging.replace_remote_folder), and read only through its summary: the
listed files are copied to local disk and checked, files it does not list are ignored, and a folder
without a summary is refused.

Upload a model folder you did not make with selfsift (an embedder, a reward model) under a remote
storage root with `python -m transforms.io.model_io upload LOCAL_FOLDER REMOTE_FOLDER`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from transforms.io import faults, hub_models
from transforms.io.model_files import HUB_ID, SUMMARY, UntrustedModelFolder, sha256_file, summary_listing_files
from transforms.io.staging import remote_files, replace_remote_folder, staged_folder, staging_prefix

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass(frozen=True)
class LoadPolicy:
    trust_remote_code: bool = False  # run Python code shipped in a model folder (config.json auto_map)
    allow_pickle: bool = False  # load pickle checkpoints (.bin, .pt, ...), which can run code when read


class ModelRefused(ValueError):
    pass


_LOCAL_COPIES: dict[str, str] = {}  # sha256 of a remote folder's summary -> its checked local copy


def local_model_dir(model_dir: str | Path) -> str:
    """The model folder on local disk: a local path as it is; a Hub id (hf://OWNER/NAME@COMMIT) its
    download under models/hub (hub_models.local_copy); a remote one (gs://, s3://, ...) is
    copied through Beam's FileSystems, so Dataflow workers read models from GCS: once per process
    and version of its summary, only the files the summary lists, each checked against its sha256."""
    model_dir = str(model_dir)
    if hub_models.is_hub_id(model_dir):
        return str(hub_models.local_copy(model_dir))
    if "://" not in model_dir:
        return model_dir
    summary = _remote_summary(model_dir)
    key = hashlib.sha256(summary).hexdigest()
    if key not in _LOCAL_COPIES:
        _LOCAL_COPIES[key] = _checked_copy(model_dir, summary)
    return _LOCAL_COPIES[key]


def _remote_summary(model_dir: str) -> bytes:
    from apache_beam.io.filesystems import FileSystems

    path = FileSystems.join(model_dir, SUMMARY)
    if FileSystems.exists(path):
        with _open_remote(path) as f:
            return f.read()
    if remote_files(model_dir) or remote_files(staging_prefix(model_dir)):
        raise UntrustedModelFolder(f"{model_dir}: no {SUMMARY}, so nothing vouches that its files are complete (an "
                                   f"interrupted save leaves a folder so); {_remedy(model_dir)}")
    raise FileNotFoundError(f"model folder not found: {model_dir}")


def _remedy(model_dir: str) -> str:
    return (f"rerun the stage that writes this model, or upload the folder with "
            f"`python -m transforms.io.model_io upload LOCAL_FOLDER {model_dir}`")


def _listed_files(model_dir: str, summary: bytes) -> dict[str, str]:
    """The summary's {file name: sha256}, refused when missing or naming anything but a plain file."""
    files = json.loads(summary).get("files")
    if not isinstance(files, dict) or not files:
        raise UntrustedModelFolder(f"{model_dir}/{SUMMARY} lists no files with their sha256 (written by an older "
                                   f"selfsift?); {_remedy(model_dir)}")
    for name in files:
        if name in ("", ".", "..", SUMMARY) or "/" in name or "\\" in name:
            raise UntrustedModelFolder(f"{model_dir}/{SUMMARY}: {name!r} is not a file name in a flat model folder")
    return files


def _checked_copy(model_dir: str, summary: bytes) -> str:
    from apache_beam.io.filesystems import FileSystems

    target = Path(tempfile.mkdtemp(prefix="selfsift-model-"))
    try:
        for name, expected in sorted(_listed_files(model_dir, summary).items()):
            source = FileSystems.join(model_dir, name)
            if not FileSystems.exists(source):
                raise UntrustedModelFolder(f"{model_dir}: {name} is listed in {SUMMARY} but missing; "
                                           f"{_remedy(model_dir)}")
            actual = _copy_hashing(source, target / name)
            if actual != expected:
                raise UntrustedModelFolder(f"{model_dir}: {name} has sha256 {actual}, but {SUMMARY} lists "
                                           f"{expected}: the file changed after the folder was saved; "
                                           f"{_remedy(model_dir)}")
        (target / SUMMARY).write_bytes(summary)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return str(target)


def _open_remote(path: str):
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _copy_hashing(source: str, target: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with _open_remote(source) as src, open(target, "wb") as dst:
        while block := src.read(chunk):
            digest.update(block)
            dst.write(block)
    return digest.hexdigest()


def upload(local_dir: str | Path, remote_dir: str) -> None:
    """Puts a local model folder at a remote one, as readers trust it: its summary, listing every file
    with its sha256, goes last, and files of an earlier upload that it does not list go."""
    summary = summary_listing_files(local_dir)
    files = {name: Path(local_dir, name) for name in json.loads(summary)["files"]}
    replace_remote_folder(str(remote_dir), files, (SUMMARY, summary))


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


def load_causal_lm(model_dir: str | Path, *, dtype: str = "float32", policy: LoadPolicy = LoadPolicy(),
                   device: str = "cpu"):
    """Returns (model, tokenizer) from a local folder, the model on `device` (a torch device)."""
    from transformers import AutoModelForCausalLM

    return _load_local(AutoModelForCausalLM, model_dir, dtype, policy, device)


def load_sequence_classifier(model_dir: str | Path, *, dtype: str = "float32", policy: LoadPolicy = LoadPolicy(),
                             device: str = "cpu"):
    """Returns (reward model, tokenizer) from a local folder, the model on `device` (a torch device)."""
    from transformers import AutoModelForSequenceClassification

    model, tokenizer = _load_local(AutoModelForSequenceClassification, model_dir, dtype, policy, device)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id  # needed to find each row's last token
    return model, tokenizer


def load_encoder(model_dir: str | Path, *, dtype: str = "float32", policy: LoadPolicy = LoadPolicy(),
                 device: str = "cpu"):
    """Returns (encoder, tokenizer), e.g. a sentence-embedding model, from a local folder, the model on
    `device` (a torch device)."""
    from transformers import AutoModel

    return _load_local(AutoModel, model_dir, dtype, policy, device)


def check_loadable(model_dir: str | Path, policy: LoadPolicy) -> bool:
    """Refuses a folder that needs what the policy does not allow; returns whether it is safetensors."""
    model_dir = local_model_dir(model_dir)
    model_sha256(model_dir)  # fails clearly when the folder or its weights are missing
    custom: dict[str, object] = {}
    for name in ("config.json", "tokenizer_config.json"):
        path = Path(model_dir, name)
        if path.is_file():
            custom.update(json.loads(path.read_text()).get("auto_map") or {})
    if custom and not policy.trust_remote_code:
        raise ModelRefused(f"{model_dir}: the model asks to run its own Python code (auto_map: "
                           f"{', '.join(sorted(custom))}); it is not run unless params.yaml sets "
                           f"security.trust_remote_code: true, which you should do only for code you have read")
    summary = Path(model_dir, SUMMARY)
    if custom and summary.is_file() and HUB_ID in json.loads(summary.read_text()):
        raise ModelRefused(f"{model_dir}: the model asks to run its own Python code (auto_map: "
                           f"{', '.join(sorted(custom))}), which is never downloaded from the Hub; it cannot be used")
    if any(Path(model_dir).glob("*.safetensors")):
        return True
    if not policy.allow_pickle:
        names = ", ".join(p.name for p in pickle_checkpoints(model_dir))
        raise ModelRefused(f"{model_dir}: only pickle checkpoints ({names}), which can run code when loaded; convert "
                           f"them to safetensors, or set security.allow_pickle_checkpoints: true if you trust them")
    return False


def _load_local(model_class, model_dir: str | Path, dtype: str, policy: LoadPolicy, device: str = "cpu"):
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
    model.to(device)
    model.eval()
    return model, tokenizer


def save_atomically(model, tokenizer, out_dir: str | Path, finish=None) -> None:
    """Saves weights and tokenizer to a sibling temp folder, calls `finish(folder)` to add files such
    as a summary, lists every file with its sha256 in the summary, then renames the folder into
    place: a killed save never leaves a half model. A remote folder (gs://...) is saved locally
    first, then uploaded (`upload`), summary last."""
    if "://" in str(out_dir):
        local = Path(tempfile.mkdtemp(prefix="selfsift-save-"))
        try:
            save_atomically(model, tokenizer, local / "model", finish)
            upload(local / "model", str(out_dir))
        finally:
            shutil.rmtree(local, ignore_errors=True)
        return
    with staged_folder(out_dir) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        if finish is not None:
            faults.reached("before_manifest")
            finish(staging)
        Path(staging, SUMMARY).write_bytes(summary_listing_files(staging))
        faults.reached("mid_write")


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


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "upload":
        sys.exit("usage: python -m transforms.io.model_io upload LOCAL_FOLDER REMOTE_FOLDER")
    upload(sys.argv[2], sys.argv[3])
