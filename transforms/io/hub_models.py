"""Models from the Hugging Face Hub, named `hf://OWNER/NAME@COMMIT` in any model param.

A Hub model is downloaded once, into `Layout.hub_model` (models/hub/OWNER--NAME/<commit>/): only
what loading it needs and nothing that can run code (safetensors weights, JSON configs, tokenizer
files; never pickles, never .py files, nothing in subfolders). The folder is staged and renamed into
place, with a summary (selfsift_model.json) that records the Hub id, the commit and each file's
sha256. Later uses find the folder and check its files against the summary, without the network.

A pinned id (a full 40-hex commit) always means the same files. An unpinned one (a branch, a tag,
or no revision: the default branch) is refused by the config unless `security.allow_unpinned: true`;
then it is resolved to the commit it names now, once per process, and that commit is what the
folder and the summary record. The answer is kept (OWNER--NAME/refs/REVISION): an offline process
uses the commit the id named when last resolved.

The token is huggingface_hub's own (`HF_TOKEN`, or `hf auth login`) and the address `HF_ENDPOINT`;
neither is printed or written here. With `HF_HUB_OFFLINE` set (`make repro` sets it for the loop,
after fetching the models the params name: pipelines/run/fetch_models.py), a model not downloaded yet
is an error that names it. Since no code is fetched, a Hub model whose config asks for its own code
(auto_map) is refused, whatever `security.trust_remote_code` says.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from transforms.io.layout import MODEL_SUMMARY, Layout
from transforms.io.model_files import HUB_ID, HUB_REVISION, UntrustedModelFolder, file_checksums, summary_listing_files
from transforms.io.staging import replace_file, staged_folder

SCHEME = "hf://"
# What is fetched from a repo's top level: weights, configs (config.json, generation_config.json, the
# weights index, tokenizer_config.json, special_tokens_map.json, vocab.json, ...) and tokenizer files.
ALLOWED_FILES = ("*.safetensors", "*.json", "tokenizer.model", "vocab.txt", "merges.txt", "chat_template.jinja")
NESTED = "*/*"  # model folders are flat: files in a repo's subfolders (onnx/, 1_Pooling/, ...) are not fetched
_COMMIT = re.compile(r"[0-9a-f]{40}")
NO_REVISION_REF = "HEAD"  # the ref an id without a revision (the default branch) is kept under
FETCH = "HF_HUB_OFFLINE=0 python -m pipelines.run.fetch_models"  # downloads what the params name (`make repro` runs it)
log = logging.getLogger("selfsift")

_RESOLVED: dict[str, str] = {}  # unpinned id -> its commit: one answer per process, so every use agrees
_CHECKED: set[Path] = set()  # folders already checked against their summaries in this process


class HubModelUnavailable(FileNotFoundError):
    """A Hub model that is not here and cannot be had: offline, not on the Hub, or without safetensors weights."""


@dataclass(frozen=True)
class HubModel:
    repo_id: str  # OWNER/NAME
    revision: str  # a commit, a branch or a tag; "" for the repo's default branch

    @property
    def pinned(self) -> bool:
        return bool(_COMMIT.fullmatch(self.revision))

    def __str__(self) -> str:
        return f"{SCHEME}{self.repo_id}" + (f"@{self.revision}" if self.revision else "")


def is_hub_id(source: str | Path) -> bool:
    return str(source).startswith(SCHEME)


def parse(source: str) -> HubModel:
    """The Hub model `source` names; a ValueError says what a Hub id looks like."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    repo_id, _, revision = source.removeprefix(SCHEME).partition("@")
    usage = f"write a Hub model as {SCHEME}OWNER/NAME@COMMIT"
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ValueError(f"{source}: {exc} ({usage})") from None
    if "/" not in repo_id or (not revision and "@" in source):
        raise ValueError(f"{source} is not a Hub model id: {usage}")
    return HubModel(repo_id, revision)


def how_to_pin(model: HubModel) -> str:
    revision = model.revision or "main"
    return (f"pin it to a full 40-hex commit, {SCHEME}{model.repo_id}@COMMIT; this prints the commit "
            f"{revision!r} names now: python -c \"from huggingface_hub import model_info; "
            f"print(model_info('{model.repo_id}', revision='{revision}').sha)\"")


def local_copy(source: str) -> Path:
    """The folder of the Hub model `source` on local disk: downloaded the first time, checked against
    its summary (once per process) every other time."""
    model = parse(source)
    commit = model.revision if model.pinned else _resolve(model)
    folder = Layout.hub_model(model.repo_id, commit).absolute()
    if not folder.is_dir():
        _download(model, commit, folder)
    elif folder not in _CHECKED:
        _check(model, commit, folder)
    _CHECKED.add(folder)
    return folder


def origin(folder: str | Path) -> dict[str, str]:
    """{HUB_ID: OWNER/NAME, HUB_REVISION: commit} of a downloaded folder, as a model summary records them."""
    summary = json.loads(Path(folder, MODEL_SUMMARY).read_text())
    return {HUB_ID: summary[HUB_ID], HUB_REVISION: summary[HUB_REVISION]}


def _resolve(model: HubModel) -> str:
    """The commit an unpinned id names: the Hub's answer, or offline the one kept from the last answer."""
    from huggingface_hub import HfApi, is_offline_mode

    key = str(model)
    if key in _RESOLVED:
        return _RESOLVED[key]
    ref = Layout.hub_repo(model.repo_id) / "refs" / quote(model.revision or NO_REVISION_REF, safe="")
    if is_offline_mode():
        if not ref.is_file():
            raise HubModelUnavailable(f"{model} is not pinned and was never resolved here, and with HF_HUB_OFFLINE set "
                                      f"the Hub cannot be asked which commit it names: run `{FETCH}` once, or "
                                      f"{how_to_pin(model)}")
        commit = ref.read_text().strip()
        log.info("%s: using commit %s, which it named when last resolved (HF_HUB_OFFLINE is set)", model, commit)
    else:
        try:
            sha = HfApi().model_info(model.repo_id, revision=model.revision or None).sha
        except _download_errors() as exc:
            raise _unavailable(model, exc) from exc
        assert sha is not None, f"{model}: the Hub's model info names no commit"
        commit = sha
        replace_file(ref, lambda tmp: tmp.write_text(commit + "\n"), crash_point=False)
    _RESOLVED[key] = commit
    return commit


def _download(model: HubModel, commit: str, folder: Path) -> None:
    from huggingface_hub import is_offline_mode, snapshot_download

    if is_offline_mode():
        raise HubModelUnavailable(f"{model} is not downloaded yet (no {_shown(folder)}), and HF_HUB_OFFLINE is set, "
                                  f"so it cannot be fetched: run `{FETCH}` (`make repro` does) to download it")
    log.info("downloading %s into %s", model if model.pinned else f"{model} (commit {commit})", _shown(folder))
    with staged_folder(folder) as staging:
        try:
            snapshot_download(model.repo_id, revision=commit, local_dir=staging, allow_patterns=list(ALLOWED_FILES),
                              ignore_patterns=[NESTED])
        except _download_errors() as exc:
            raise _unavailable(model, exc) from exc
        shutil.rmtree(staging / ".cache", ignore_errors=True)  # huggingface_hub's download bookkeeping
        if not any(staging.glob("*.safetensors")):
            raise HubModelUnavailable(f"{model} has no safetensors weights at the top of the repo, and selfsift "
                                      f"loads no others (pickle checkpoints can run code when read)")
        summary = {HUB_ID: model.repo_id, HUB_REVISION: commit}
        (staging / MODEL_SUMMARY).write_text(json.dumps(summary))
        (staging / MODEL_SUMMARY).write_bytes(summary_listing_files(staging))


def _check(model: HubModel, commit: str, folder: Path) -> None:
    again = f"delete {_shown(folder)} to download it again"
    path = folder / MODEL_SUMMARY
    summary = json.loads(path.read_text()) if path.is_file() else {}
    if (summary.get(HUB_ID), summary.get(HUB_REVISION)) != (model.repo_id, commit):
        raise UntrustedModelFolder(f"{model}: {_shown(path)} does not record {model.repo_id} at {commit}; {again}")
    listed, found = summary.get("files") or {}, file_checksums(folder)
    changed = sorted(name for name in listed.keys() | found.keys() if listed.get(name) != found.get(name))
    if changed:
        raise UntrustedModelFolder(f"{model}: {', '.join(changed)} in {_shown(folder)} differ from what "
                                   f"{MODEL_SUMMARY} lists (changed, added or missing since the download); {again}")


def _download_errors() -> tuple[type[BaseException], ...]:
    import httpx2

    return OSError, httpx2.HTTPError  # huggingface_hub's HTTP errors are OSErrors; a dropped connection is not


def _unavailable(model: HubModel, exc: BaseException) -> HubModelUnavailable:
    from huggingface_hub import constants
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(exc, RevisionNotFoundError):
        why = f"{model.repo_id} has no revision {model.revision or 'main'!r}"
    elif isinstance(exc, RepositoryNotFoundError):
        why = "no such model, or a private or gated one the token (HF_TOKEN) may not read"
    else:
        why = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return HubModelUnavailable(f"{model} could not be fetched from {constants.ENDPOINT} ({why})")


def _shown(path: Path) -> str:
    """A path as the user knows it: relative to the project folder when it is inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
