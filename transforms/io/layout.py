"""Where everything lives. Data and models go under `storage.root` when one is set (a URL such as
gs://bucket/selfsift, for stages run on Dataflow), else in the project folder, which is what DVC
tracks. Reports, metrics and run records always stay in the project folder: they are small and
committed. So do models downloaded from the Hub (models/hub/, not tracked): each process that needs
one finds it there, or downloads it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BASE = "base"  # the name of the base model in `iterations.*.generator`
MODEL_SUMMARY = "selfsift_model.json"  # in every model folder: what made it, and each file's sha256
EVAL_SPLITS = ("eval", "eval_ood")
SPLITS = ("train", *EVAL_SPLITS)  # the built-in prompt sets


@dataclass(frozen=True)
class Layout:
    root: str  # storage.root ("": the project folder)
    prompts_dir: str  # prompts.out_dir
    base_model_dir: str  # base_model.path

    def at_root(self, path: str) -> str:
        return f"{self.root.rstrip('/')}/{path}" if self.root else path

    def prompts(self, split: str) -> str:
        return self.at_root(f"{self.prompts_dir}/{split}.parquet")

    def prompts_folder(self) -> str:
        return self.at_root(self.prompts_dir)

    def candidates(self, iteration: str) -> str:
        return self.at_root(f"data/candidates/{iteration}")

    @staticmethod
    def round_tag(generation_round: int) -> str:
        """The tag of a generate round's shards in the candidates folder (parquet_io.shard_name), which every
        reader of the folder sees: round 1's are untagged, so uniform sampling's names never change."""
        return "" if generation_round == 1 else f"round-{generation_round:02d}"

    def judgments(self, iteration: str) -> str:
        return self.at_root(f"data/judgments/{iteration}")

    def revisions(self, iteration: str) -> str:
        """Revised answers of the iteration's failed candidates (stage revise)."""
        return self.at_root(f"data/revisions/{iteration}")

    def revision_judgments(self, iteration: str) -> str:
        return self.at_root(f"data/revision_judgments/{iteration}")

    def shards(self, iteration: str) -> str:
        return self.at_root(f"data/shards/{iteration}")

    def rejected(self, iteration: str) -> str:
        return self.at_root(f"data/rejected/{iteration}")

    def pairs(self, iteration: str) -> str:
        return self.at_root(f"data/pairs/{iteration}")

    def evals(self, iteration: str) -> str:
        return self.at_root(f"data/evals/{iteration}")

    def models(self) -> str:
        """The folder of every iteration's model."""
        return self.at_root("models")

    def model(self, name: str) -> str:
        """A model folder: the base model, or the one fine-tuned in iteration `name`."""
        return self.at_root(self.base_model_dir) if name == BASE else f"{self.models()}/{name}"

    @staticmethod
    def manifest(folder: str) -> str:
        return f"{folder}/manifest.json"

    @staticmethod
    def model_summary(model_dir: str) -> str:
        return f"{model_dir}/{MODEL_SUMMARY}"

    # In the project folder, always.
    @staticmethod
    def calibration(iteration: str) -> tuple[Path, Path]:
        """The judge calibration report of an iteration, and its figure."""
        return Path(f"reports/judges/{iteration}.json"), Path(f"reports/judges/{iteration}.png")

    @staticmethod
    def validation(iteration: str) -> Path:
        return Path(f"reports/validation/{iteration}.json")

    @staticmethod
    def validation_docs(iteration: str) -> Path:
        """Great Expectations' HTML Data Docs of an iteration."""
        return Path(f"reports/validation/{iteration}")

    @staticmethod
    def training_log(iteration: str) -> Path:
        """DVCLive's log of fine-tuning an iteration: metrics.json and plots/ (loss, learning rate per step)."""
        return Path(f"reports/training/{iteration}")

    @staticmethod
    def metrics(iteration: str) -> Path:
        return Path(f"metrics/{iteration}.json")

    @staticmethod
    def run_record(run: str, seed: int | str) -> Path:  # str: a dvc.yaml template, ${seed}
        return Layout.RUNS / f"{run}-seed{seed}.json"

    @staticmethod
    def hub_repo(repo_id: str) -> Path:
        """Where the commits of a Hub model (OWNER/NAME) are downloaded, one folder each
        (transforms/io/hub_models.py)."""
        return Layout.HUB_MODELS / repo_id.replace("/", "--")

    @staticmethod
    def hub_model(repo_id: str, commit: str) -> Path:
        return Layout.hub_repo(repo_id) / commit

    HUB_MODELS = Path("models/hub")  # models downloaded from the Hub, one folder per repo and commit
    RUNS = Path("reports/runs")  # one record per run and seed
    REPORTS = Path("reports")  # summary.md, figures/, plots/
    PARAMS = Path("params.yaml")  # the parameters DVC runs with
    DVC_LOCK = Path("dvc.lock")  # what DVC ran: each stage's deps, params and outputs, with their hashes
