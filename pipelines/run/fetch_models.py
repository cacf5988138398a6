"""Downloads the Hub models (hf://OWNER/NAME@COMMIT) the params name, in every model param in use
(the base model's, and those of the judges and the embedder when enabled), into models/hub, so that
the loop runs offline: `make repro` runs this online, then `dvc repro` with HF_HUB_OFFLINE=1. A model
already downloaded is checked, not fetched again; local models are left alone.

    HF_HUB_OFFLINE=0 python -m pipelines.run.fetch_models [--params params.yaml]
"""

from __future__ import annotations

import argparse
import logging
import sys

from pipelines.config import Config, ConfigError, load, models_in_use
from transforms.io import hub_models


def main(config: Config) -> dict[str, str]:
    """{param key: its model's folder} for each Hub model in use; a failure names the key."""
    folders = {}
    for key, source in models_in_use(config).items():
        if hub_models.is_hub_id(source):
            try:
                folders[key] = str(hub_models.local_copy(source))
            except (FileNotFoundError, ValueError) as exc:
                raise type(exc)(f"{key}: {exc}") from exc
    return folders


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m pipelines.run.fetch_models", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml", help="the parameters file (default: params.yaml)")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("selfsift").setLevel(logging.INFO)
    try:
        for key, folder in main(load(parser.parse_args().params)).items():
            print(f"{key}: {folder}")
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"selfsift: error: {exc}", file=sys.stderr)
        sys.exit(2)
