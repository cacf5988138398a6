"""Stage `publish`: a Hugging Face Hub dataset folder for one or all iterations, and its upload.

The folder holds the kept shards (`data/iter-NNN/`), the preference pairs (`pairs/iter-NNN/`),
`selfsift_manifest.json` and a dataset card (`README.md`) whose YAML declares one config per
iteration, a `default` config over all of them and a `pairs` config, with their features. The upload
uses huggingface_hub (`create_repo`, then `upload_folder`) with the token from `HF_TOKEN` or the
user's login; the token is passed to the client only, never printed, logged or written.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pipelines.config import Config, iteration_name
from schemas.records import PAIR, SHARD_ROW
from transforms.io.dataset_card import card_text, features_yaml
from transforms.io.parquet_io import list_shards, read_bytes, read_json
from transforms.io.staging import staged_folder

log = logging.getLogger("selfsift")


class PublishError(ValueError):
    pass


def curated_iterations(config: Config) -> list[str]:
    layout = config.layout
    return [it for it in config.iterations if read_json(layout.manifest(layout.shards(it))) is not None]


def iterations_to_publish(config: Config, which: str) -> list[str]:
    available = curated_iterations(config)
    if which == "all":
        if not available:
            raise PublishError("no iteration has curated shards yet; run `dvc repro` first")
        return available
    try:
        name = iteration_name(which)
    except ValueError as exc:
        raise PublishError(f"--iteration {which!r}: expected a number, an iteration name or 'all'") from exc
    if name not in available:
        raise PublishError(f"--iteration {which}: {name} has no curated shards to publish "
                           f"(curated: {', '.join(available) or 'none'}; listed in params: {', '.join(config.iterations)})")
    return [name]


def check_repo_id(repo_id: str) -> str:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise PublishError(f"--repo-id {repo_id!r}: {exc}") from exc
    if repo_id.count("/") != 1:
        raise PublishError(f"--repo-id {repo_id!r}: expected ORG/NAME")
    return repo_id


def iteration_facts(config: Config, iteration: str) -> dict:
    """What the card says about one iteration: rows, funnel, calibration, validation, lineage."""
    layout = config.layout
    manifest = read_json(layout.manifest(layout.shards(iteration)))
    calibration = read_json(str(layout.calibration(iteration)[0])) or {"judges": {}}
    validation = read_json(str(layout.validation(iteration))) or {}
    trained = read_json(layout.model_summary(layout.model(iteration)))
    return {
        "rows": manifest["rows_out"], "candidates": manifest["rows_in"], "pairs": manifest["pairs"],
        "funnel": manifest["funnel"], "rejected": manifest["rejected"], "policy": manifest["policy"],
        "generator_model": manifest["generator_model"], "generator_model_sha256": manifest["generator_model_sha256"],
        "params_hash": manifest["params_hash"], "git_revision": manifest["git_revision"],
        "calibration": {name: {"roc_auc": s.get("roc_auc"), "candidates": s.get("candidates")}
                        for name, s in calibration["judges"].items()},
        "validation": {"success": validation.get("success"), "failed": validation.get("failed", []),
                       "warnings": validation.get("warnings", [])},
        "trained_model_sha256": trained and trained.get("weights_sha256"),
    }


def card_metadata(iterations: list[str], facts: dict, license_id: str) -> dict:
    def data_files(pattern):
        return [{"split": "train", "path": pattern}]

    configs = [{"config_name": "default", "data_files": data_files("data/*/*.parquet"), "default": True}]
    configs += [{"config_name": it, "data_files": data_files(f"data/{it}/*.parquet")} for it in iterations]
    configs.append({"config_name": "pairs", "data_files": data_files("pairs/*/*.parquet")})
    rows = sum(f["rows"] for f in facts.values())
    infos = [{"config_name": c["config_name"], "features": features_yaml(PAIR if c["config_name"] == "pairs" else SHARD_ROW)}
             for c in configs]
    return {
        "license": license_id, "language": ["en"], "task_categories": ["text-generation"],
        "size_categories": [size_category(rows)], "pretty_name": "selfsift self-filtered synthetic data",
        "tags": ["synthetic", "self-filtered", "instruction-following", "ifeval", "selfsift"],
        "configs": configs, "dataset_info": infos,
    }


def size_category(rows: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if rows < bound:
            return label
    return "10M<n<100M"


def build_folder(config: Config, iterations: list[str], repo_id: str, out: str | Path) -> Path:
    """Builds the Hub folder next to `out` and renames it into place."""
    from huggingface_hub import DatasetCard, DatasetCardData

    with staged_folder(out) as staging:
        facts = {it: iteration_facts(config, it) for it in iterations}
        for it in iterations:
            for source, target in ((config.layout.shards(it), staging / "data" / it),
                                   (config.layout.pairs(it), staging / "pairs" / it)):
                target.mkdir(parents=True)
                for shard in list_shards(source):
                    (target / shard.rsplit("/", 1)[-1]).write_bytes(read_bytes(shard))
        metadata = card_metadata(iterations, facts, config.publish.license)
        card = DatasetCard(f"---\n{DatasetCardData(**metadata).to_yaml()}\n---\n\n"
                           + card_text(repo_id, iterations, facts))
        card.save(staging / "README.md")
        (staging / "selfsift_manifest.json").write_text(
            json.dumps({"repo_id": repo_id, "iterations": facts}, indent=2, sort_keys=True) + "\n")
    return Path(out)


def hub_token() -> str:
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise PublishError("no Hugging Face token: set HF_TOKEN or run `hf auth login` "
                           "(--dry-run builds the folder without one)")
    return token


def check_remote_schema(api, repo_id: str, metadata: dict) -> bool:
    """Refuses to add to an existing dataset whose declared features differ; returns whether it exists."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        info = api.dataset_info(repo_id)
    except RepositoryNotFoundError:
        return False
    remote = {i.get("config_name", "default"): i.get("features")
              for i in _as_list((info.card_data or {}).get("dataset_info"))}
    for local in metadata["dataset_info"]:
        theirs = remote.get(local["config_name"])
        if theirs is not None and theirs != local["features"]:
            ours_names = [f["name"] for f in local["features"]]
            their_names = [f.get("name") for f in theirs]
            raise PublishError(f"{repo_id} already exists with a different schema for config "
                               f"{local['config_name']!r}: its columns {their_names} vs ours {ours_names}; "
                               f"publish to a new repo id")
    return True


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def upload(folder: Path, repo_id: str, private: bool, token: str) -> str:
    from huggingface_hub import DatasetCard, HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    api = HfApi(token=token)
    metadata = DatasetCard.load(folder / "README.md").data.to_dict()
    iterations = ", ".join(json.loads((folder / "selfsift_manifest.json").read_text())["iterations"])
    try:
        existed = check_remote_schema(api, repo_id, metadata)
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                                   commit_message=f"selfsift publish: {iterations}")
    except (HfHubHTTPError, OfflineModeIsEnabled) as exc:  # their messages carry no token
        raise PublishError(f"upload of {folder} to {repo_id} failed (the folder is kept): {exc}") from exc
    log.info("published %s to %s (%s repo)", folder, repo_id, "existing" if existed else "new")
    return commit.commit_url


def main(config: Config, which: str, repo_id: str | None, private: bool | None, dry_run: bool) -> dict:
    repo_id = check_repo_id(repo_id or config.publish.repo_id)
    iterations = iterations_to_publish(config, which)
    token = None if dry_run else hub_token()  # before any work: a missing token fails fast
    folder = build_folder(config, iterations, repo_id, config.publish.folder)
    result = {"folder": str(folder), "repo_id": repo_id, "iterations": iterations, "uploaded": False}
    if not dry_run:
        result["commit_url"] = upload(folder, repo_id, config.publish.private if private is None else private, token)
        result["uploaded"] = True
    return result
