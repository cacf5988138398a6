"""Stage `publish`: a Hugging Face Hub dataset folder for one or all iterations, and its upload.

The folder holds the kept shards (`data/iter-NNN/`), the preference pairs (`pairs/iter-NNN/`),
`selfsift_manifest.json` and a dataset card (`README.md`) whose YAML declares one config per
iteration, a `default` config over all of them and a `pairs` config, with their features. Only
iterations whose validation passed are published. The upload adds the recipe (`recipe/`: params.yaml,
dvc.lock and the run record) and uses huggingface_hub (`create_repo`, then `upload_folder`, which
deletes what an earlier publish left under `data/`, `pairs/` and `recipe/`) with the token from
`HF_TOKEN` or the user's login; the token is passed to the client only, never printed, logged or written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from pipelines import config as config_module
from pipelines.config import Config, iteration_name
from pipelines.run.guard import guarded
from pipelines.stage import Out, Stage, Where
from schemas.records import PAIR, SHARD_ROW
from transforms.io.layout import BASE, Layout
from transforms.io.parquet_io import list_shards, read_bytes, read_json
from transforms.io.staging import staged_folder
from transforms.publishing.dataset_card import card_text, features_yaml

log = logging.getLogger("selfsift")

DATA, PAIRS, RECIPE = "data", "pairs", "recipe"  # the repo's folders publish owns: each upload replaces them
CARD, MANIFEST = "README.md", "selfsift_manifest.json"
HUB_TIMEOUT_S = 60.0  # the longest one request waits for the Hub; huggingface_hub alone would wait forever


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


def check_validated(iterations: list[str]) -> None:
    """Refuses an iteration whose validation failed or never ran: DVC's order alone does not show it."""
    for it in iterations:
        path = Layout.validation(it)
        result = read_json(str(path))
        if result is None:
            raise PublishError(f"{it} has no validation result ({path} not found); run `selfsift validate "
                               f"--iteration {it}` (or `dvc repro`) before publishing it")
        if result.get("success") is not True:
            failed = ", ".join(result.get("failed") or []) or "see the report"
            raise PublishError(f"{it} failed validation ({failed}; {path}); publish only validated iterations "
                               f"(--iteration N) or fix the data and validate again")


def check_repo_id(repo_id: str) -> str:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise PublishError(f"--repo-id {repo_id!r}: {exc}") from exc
    if repo_id.count("/") != 1:
        raise PublishError(f"--repo-id {repo_id!r}: expected ORG/NAME")
    return repo_id


def recipe_files(config: Config) -> dict[str, Path]:
    """{path in the repo: local file}: the parameters, DVC's record of the run, and the run record."""
    if config_module.load(Layout.PARAMS) != config:
        raise PublishError(f"the parameters given are not {Layout.PARAMS}'s, but the upload carries {Layout.PARAMS} "
                           f"and {Layout.DVC_LOCK} as the recipe; publish with --params {Layout.PARAMS}")
    files = (Layout.PARAMS, Layout.DVC_LOCK, Layout.run_record(config.report.run, config.seed))
    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        raise PublishError(f"the recipe to upload is incomplete: {', '.join(missing)} not found; run `dvc repro` "
                           f"(its report stage writes the run record) before publishing, or use --dry-run")
    return {f"{RECIPE}/{path.as_posix()}": path for path in files}


def iteration_facts(config: Config, iteration: str) -> dict:
    """What the card says about one iteration: rows, funnel, calibration, validation, lineage."""
    layout = config.layout
    manifest = read_json(layout.manifest(layout.shards(iteration)))
    calibration = read_json(str(layout.calibration(iteration)[0])) or {"judges": {}}
    validation = read_json(str(layout.validation(iteration)))
    assert manifest is not None and validation is not None, f"{iteration} is curated and validated (check_validated)"
    trained = read_json(layout.model_summary(layout.model(iteration)))
    return {
        "rows": manifest["rows_out"], "candidates": manifest["rows_in"], "pairs": manifest["pairs"],
        "funnel": manifest["funnel"], "rejected": manifest["rejected"], "policy": manifest["policy"],
        "generator_model": manifest["generator_model"], "generator_model_sha256": manifest["generator_model_sha256"],
        "params_hash": manifest["params_hash"], "git_revision": manifest["git_revision"],
        "calibration": {name: {"roc_auc": s.get("roc_auc"), "candidates": s.get("candidates")}
                        for name, s in calibration["judges"].items()},
        "validation": {"success": validation["success"], "warnings": validation.get("warnings", [])},
        "trained_model_sha256": trained and trained.get("weights_sha256"),
    }


def base_model_summary(config: Config, iterations: list[str], facts: dict) -> dict:
    """The base model's summary, once each iteration's generator is the model that wrote its candidates."""
    layout = config.layout
    for it in iterations:
        path = layout.model_summary(config.generator_dir(it))
        now = (read_json(path) or {}).get("weights_sha256")
        if now != facts[it]["generator_model_sha256"]:
            raise PublishError(f"{it} was generated by weights {facts[it]['generator_model_sha256'][:12]}…, but {path} "
                               f"{'names ' + now[:12] + '…' if now else 'is missing'}; the card would name the wrong "
                               f"generator: run `dvc repro` so models and data agree")
    path = layout.model_summary(layout.model(BASE))
    summary = read_json(path)
    if summary is None:
        raise PublishError(f"{path} not found: the card names the base model from it; run `selfsift prepare-model`")
    return summary


def hub_configs(iterations: list[str]) -> list[dict]:
    def data_files(pattern):
        return [{"split": "train", "path": pattern}]

    configs = [{"config_name": "default", "data_files": data_files(f"{DATA}/*/*.parquet"), "default": True}]
    configs += [{"config_name": it, "data_files": data_files(f"{DATA}/{it}/*.parquet")} for it in iterations]
    configs.append({"config_name": "pairs", "data_files": data_files(f"{PAIRS}/*/*.parquet")})
    return configs


def card_metadata(configs: list[dict], facts: dict, license_id: str) -> dict:
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

    facts = {it: iteration_facts(config, it) for it in iterations}
    configs = hub_configs(iterations)
    about = {"control": config.curate.control, "builtin_prompts": config.prompts.source == "builtin",
             "prompts_source": config.prompts.source, "base_model": base_model_summary(config, iterations, facts),
             "configs": configs}
    with staged_folder(out) as staging:
        for it in iterations:
            for source, target in ((config.layout.shards(it), staging / DATA / it),
                                   (config.layout.pairs(it), staging / PAIRS / it)):
                target.mkdir(parents=True)
                for shard in list_shards(source):
                    (target / shard.rsplit("/", 1)[-1]).write_bytes(read_bytes(shard))
        metadata = card_metadata(configs, facts, config.publish.license)
        card = DatasetCard(f"---\n{DatasetCardData(**metadata).to_yaml()}\n---\n\n"
                           + card_text(repo_id, iterations, facts, about))
        card.save(staging / CARD)
        (staging / MANIFEST).write_text(
            json.dumps({"repo_id": repo_id, "iterations": facts}, indent=2, sort_keys=True) + "\n")
    return Path(out)


def hub_token() -> str:
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise PublishError("no Hugging Face token: set HF_TOKEN or run `hf auth login` "
                           "(--dry-run builds the folder without one)")
    return token


def check_remote_schema(api, repo_id: str, metadata: dict, timeout_s: float) -> bool:
    """Refuses to add to an existing dataset whose declared features differ; returns whether it exists."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        info = api.dataset_info(repo_id, timeout=timeout_s)
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


@contextlib.contextmanager
def upload_view(folder: Path, recipe: dict[str, Path]):
    """The built folder plus the recipe, as one folder to upload (hard links where possible); the built
    folder itself is not touched. Named so that the next build clears one a killed upload left."""
    view = Path(tempfile.mkdtemp(prefix=f".{folder.name}.upload-", dir=folder.parent))
    try:
        shutil.copytree(folder, view, dirs_exist_ok=True, copy_function=_link_or_copy)
        for target, source in recipe.items():
            (view / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, view / target)
        yield view
    finally:
        shutil.rmtree(view, ignore_errors=True)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@contextlib.contextmanager
def hub_timeout(seconds: float):
    """Bounds every request of huggingface_hub's shared client: some of its calls pass `timeout=None`
    (wait forever), which a client default cannot override, so a request hook fills in the bound."""
    from huggingface_hub import get_session

    def bound(request):
        limits = request.extensions.get("timeout") or dict.fromkeys(("connect", "read", "write", "pool"))
        request.extensions = {**request.extensions,
                              "timeout": {k: seconds if v is None else v for k, v in limits.items()}}

    session = get_session()
    hooks = session.event_hooks
    session.event_hooks = {**hooks, "request": [*hooks.get("request", []), bound]}
    try:
        yield
    finally:
        session.event_hooks = hooks


def failure_line(exc: BaseException, endpoint: str, timeout_s: float) -> str:
    """What went wrong between us and the Hub, and what to do about it, in one line."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    cause = _first_in_chain(exc, (HfHubHTTPError, httpx2.TransportError, OfflineModeIsEnabled)) or exc
    if isinstance(cause, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE=1 is set (`make repro` sets it); unset it in the shell you publish from"
    if isinstance(cause, HfHubHTTPError) and cause.response is not None:
        status = cause.response.status_code
        said = f": {_one_line(cause.server_message)}" if cause.server_message else ""
        return f"{endpoint} answered {status} {cause.response.reason_phrase}{said}; {_what_to_do(status)}"
    if isinstance(cause, httpx2.TimeoutException):
        return f"{endpoint} did not answer within {timeout_s:g} s; check your network, or retry later"
    if isinstance(cause, httpx2.ConnectError):
        return (f"cannot connect to {endpoint} ({_one_line(str(cause))}); check the address (HF_ENDPOINT), "
                f"your network and proxy")
    if isinstance(cause, httpx2.TransportError):
        return (f"the connection to {endpoint} broke ({type(cause).__name__}: {_one_line(str(cause))}); "
                f"retry, and check HF_ENDPOINT and any proxy")
    return (f"{endpoint} gave an answer the Hub client could not use ({type(cause).__name__}: "
            f"{_one_line(str(cause))}); check that HF_ENDPOINT points to a Hugging Face Hub")


def _what_to_do(status: int) -> str:
    if status == 401:
        return "the token was not accepted: set HF_TOKEN to a valid token or run `hf auth login`"
    if status == 403:
        return "the token may not write there: use a token with write access to that namespace, or another --repo-id"
    if status >= 500:
        return "the Hub failed; retry later"
    return "check --repo-id and HF_ENDPOINT"


def _first_in_chain(exc: BaseException | None, kinds: tuple) -> BaseException | None:
    """huggingface_hub wraps some failures (an LFS upload's in a RuntimeError); find the one underneath."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kinds):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def upload(folder: Path, repo_id: str, private: bool, token: str, recipe: dict[str, Path], timeout_s: float) -> str:
    from huggingface_hub import DatasetCard, HfApi

    api = HfApi(token=token)
    metadata = DatasetCard.load(folder / CARD).data.to_dict()
    iterations = ", ".join(json.loads((folder / MANIFEST).read_text())["iterations"])
    with upload_view(folder, recipe) as view, hub_timeout(timeout_s):
        try:
            existed = check_remote_schema(api, repo_id, metadata, timeout_s)
            api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            commit = api.upload_folder(folder_path=str(view), repo_id=repo_id, repo_type="dataset",
                                       commit_message=f"selfsift publish: {iterations}",
                                       delete_patterns=[f"{owned}/*" for owned in (DATA, PAIRS, RECIPE)])
        except PublishError:
            raise
        except Exception as exc:  # whatever the client raised ends in one line; its messages carry no token
            log.debug("upload failed", exc_info=True)
            raise PublishError(f"upload of {folder} to {repo_id} failed: {failure_line(exc, api.endpoint, timeout_s)}. "
                               f"The folder {folder} is kept; run `selfsift publish` again to retry") from exc
    log.info("published %s to %s (%s repo)", folder, repo_id, "existing" if existed else "new")
    return commit.commit_url


def main(config: Config, which: str, repo_id: str | None, private: bool | None, dry_run: bool) -> dict:
    with guarded("publish", which if which == "all" else iteration_name(which), config):
        return _publish(config, which, repo_id, private, dry_run)


def _publish(config: Config, which: str, repo_id: str | None, private: bool | None, dry_run: bool) -> dict:
    repo_id = check_repo_id(repo_id or config.publish.repo_id)
    iterations = iterations_to_publish(config, which)
    check_validated(iterations)
    # before any work: a missing token or recipe fails fast
    token, recipe = (None, None) if dry_run else (hub_token(), recipe_files(config))
    folder = build_folder(config, iterations, repo_id, config.publish.folder)
    result = {"folder": str(folder), "repo_id": repo_id, "iterations": iterations, "uploaded": False}
    if not dry_run:
        assert token is not None and recipe is not None  # read above unless dry_run
        result["commit_url"] = upload(folder, repo_id, config.publish.private if private is None else private, token,
                                      recipe, HUB_TIMEOUT_S)
        result["uploaded"] = True
    return result


def _flags(parser) -> None:
    parser.add_argument("--iteration", default="all", help="iteration number or name, or 'all' (default)")
    parser.add_argument("--repo-id", help="ORG/NAME on the Hub (default: publish.repo_id in params)")
    parser.add_argument("--private", action=argparse.BooleanOptionalAction, default=None,
                        help="create the repo private (default: publish.private in params)")
    parser.add_argument("--dry-run", action="store_true", help="only build the folder; upload nothing")


STAGE = Stage(
    "publish", "build the Hugging Face Hub dataset folder and upload it",
    lambda args, config, beam: main(config, args.iteration, args.repo_id, args.private, args.dry_run),
    params=("publish", "seed", "prompts.source", "curate.control", "report.run"),  # the card says what made the data
    reads=lambda where: [Where.every(where.layout.shards(where.iteration)),
                         Where.every(where.layout.pairs(where.iteration)),
                         str(Layout.calibration(where.iteration)[0].parent),
                         str(Layout.validation(where.iteration).parent), where.layout.models()],
    writes=lambda where: [Out("${publish.folder}")],
    flags=_flags, dvc_args="--iteration all --dry-run")  # in the loop it builds the folder only; uploading is yours
