"""Typed configuration read from params.yaml, validated before any work starts.

Unknown keys, wrong types and out-of-range values fail with the offending key named. Each setting
has one default, in the class of the code that uses it: the stages' classes here, the judges' and
curation steps' in their own modules (transforms/judges/config.py, transforms/curation/config.py).
params.yaml and docs/params.md are written from these classes, defaults and comments included (`make docs`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipelines.run.beam_options import BeamConfig
from schemas.expectations import SEVERITIES, expectation_ids
from transforms.curation.config import CurateConfig
from transforms.curation.semantic_dedup import SemanticDedupConfig
from transforms.evaluation.scoring import SCORING_KINDS
from transforms.generation.adaptive_budget import ADAPTIVE, BUDGETS, AdaptiveConfig
from transforms.io import hub_models
from transforms.io.devices import require_device
from transforms.io.layout import BASE, EVAL_SPLITS, SPLITS, Layout
from transforms.io.model_io import LoadPolicy
from transforms.judges.config import JudgeConfig
from transforms.judges.contract import JudgeSettings
from transforms.judges.custom_judge import NAME_PATTERN
from transforms.judges.registry import JUDGES, REFERENCE
from transforms.revision.config import ReviseConfig
from transforms.settings import ConfigError, require, require_at_least_one, require_dtype

__all__ = ["Config", "ConfigError", "CurateConfig", "JudgeConfig", "iteration_name", "iteration_number", "load"]


@dataclass(frozen=True)
class BaseModelConfig:
    source: str  # a GGUF file, a folder holding a transformers model in safetensors, or a Hub model hf://OWNER/NAME@COMMIT
    sha256: str = ""  # expected checksum of a GGUF source; empty skips the check
    path: str = "models/base"  # where the base model is written as safetensors (under models/)
    init: str = "pretrained"  # "pretrained": the source's weights; "random": its architecture, randomly initialised

    def validate(self, where: str) -> None:
        _require_output_path(self.path, f"{where}.path", "models")
        require(self.init in ("pretrained", "random"), f"{where}.init must be 'pretrained' or 'random'")


@dataclass(frozen=True)
class PromptsConfig:
    source: str = "builtin"  # "builtin", or a .jsonl/.parquet file of your own train prompts
    train_size: int = 240  # builtin train prompts
    eval_size: int = 500  # eval: training wordings and types, unseen topics
    eval_ood_size: int = 500  # eval_ood: unseen wordings, 4 never-trained types, unseen topics
    max_constraints: int = 3  # each prompt combines 1..max_constraints compatible constraints
    seed: int = 1234  # the prompt sets' own seed: runs with another loop `seed` keep the same eval sets
    out_dir: str = "data/prompts"  # where train, eval and eval_ood are written (under data/)

    def validate(self, where: str) -> None:
        require_at_least_one(self, where, "train_size", "eval_size", "eval_ood_size", "max_constraints")
        _require_output_path(self.out_dir, f"{where}.out_dir", "data")


@dataclass(frozen=True)
class GenerateConfig:
    backend: str = "transformers"  # "transformers" (CPU or GPU), or "vllm" (GPU workers; docs/dataflow.md)
    vllm_server_kwargs: dict[str, str] = field(default_factory=dict)  # extra `vllm serve` flags, e.g. {max-model-len: "2048"}
    candidates_per_prompt: int = 4  # K sampled answers per train prompt (budget adaptive: K x prompts in all)
    # "uniform": K per prompt; "adaptive": `adaptive.first_round` per prompt, then rounds that spend the rest of the
    # budget on prompts no candidate passed yet (the IFEval verifier, judge.verifier.threshold), the hardest first
    budget: str = "uniform"
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)
    temperature: float = 0.8  # 0 is greedy
    top_p: float = 0.95  # nucleus sampling: keep tokens while the mass above them is below top_p
    top_k: int = 0  # 0 disables top-k
    max_new_tokens: int = 128  # an answer that hits it has finish_reason length
    micro_batch_size: int = 128  # sequences decoded together (a prompt's K candidates share its prefill)
    max_batch_size: int = 128  # elements RunInference hands the model at once
    max_prompt_tokens: int = 1024  # longer prompts are not generated (finish_reason prompt_too_long)
    num_shards: int = 4  # candidate shards; a prompt's K candidates share one
    # a rerun after a crash keeps the shards already complete and makes the rest (on a local runner each shard is its own
    # run, so they complete one at a time; a distributed runner makes them in one job); false: every shard is made again
    resumable: bool = True
    dtype: str = "bfloat16"  # inference weights: bfloat16 or float32
    device: str = "auto"  # backend transformers: auto (CUDA when the worker has a GPU, else CPU), cpu, cuda or cuda:N

    def validate(self, where: str) -> None:
        require(self.backend in ("transformers", "vllm"), f"{where}.backend must be 'transformers' or 'vllm'")
        require(self.candidates_per_prompt >= 1, f"{where}.candidates_per_prompt must be at least 1")
        require(self.budget in BUDGETS, f"{where}.budget must be one of {', '.join(BUDGETS)}")
        if self.budget == ADAPTIVE:
            self.adaptive.check_budget(self.candidates_per_prompt, f"{where}.adaptive")
        require(self.temperature >= 0, f"{where}.temperature must be >= 0 (0 is greedy)")
        require(0 < self.top_p <= 1, f"{where}.top_p must be in (0, 1]")
        require(self.top_k >= 0, f"{where}.top_k must be >= 0 (0 disables it)")
        for name in ("max_new_tokens", "micro_batch_size", "max_batch_size", "max_prompt_tokens", "num_shards"):
            require(getattr(self, name) >= 1, f"{where}.{name} must be at least 1")
        require_dtype(self.dtype, where)
        require_device(self.device, where)

    def samples_adaptively(self) -> bool:
        return self.budget == ADAPTIVE


@dataclass(frozen=True)
class ValidateConfig:
    # Severity of a Great Expectations check (its id in schemas/expectations.py), where it differs from the default
    # (fail, and warn for pairs.not_eval_prompt_id): fail stops the loop before fine-tuning; warn is reported in the
    # log, reports/validation/iter-N.json and the Data Docs
    severity: dict[str, str] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        known = expectation_ids() if self.severity else ()  # builds the suites, with Great Expectations
        for expectation_id, level in self.severity.items():
            require(expectation_id in known, f"{where}.severity: unknown expectation {expectation_id!r} "
                                             f"(see schemas/expectations.py)")
            require(level in SEVERITIES, f"{where}.severity.{expectation_id} must be 'fail' or 'warn'")


@dataclass(frozen=True)
class LoraConfig:
    enabled: bool = False  # train peft adapters instead of every weight
    r: int = 16  # adapter rank
    alpha: int = 32  # adapter scaling (peft's lora_alpha)
    dropout: float = 0.05  # dropout on the adapters
    target_modules: str = "all-linear"  # peft's name for every linear layer but the output head

    def validate(self, where: str) -> None:
        require(self.r >= 1 and self.alpha >= 1, f"{where}.r and {where}.alpha must be at least 1")
        require(0 <= self.dropout < 1, f"{where}.dropout must be in [0, 1)")


@dataclass(frozen=True)
class FinetuneConfig:
    method: str = "sft"  # "sft" on the kept shards, or "dpo" on the preference pairs
    start_from: str = "previous"  # "previous": continue training the generator; "base": retrain the base (ReST-EM)
    data: str = "iteration"  # "iteration": this iteration's shards; "all": every iteration's so far
    replay_fraction: float = 0.0  # with data: iteration, this share of the training rows comes from earlier iterations
    dpo_beta: float = 0.1  # DPO's KL penalty (TRL's beta)
    lora: LoraConfig = field(default_factory=LoraConfig)
    epochs: float = 3.0  # passes over the training rows
    learning_rate: float = 1e-4  # peak, cosine schedule after warmup
    batch_size: int = 8  # rows per device per step
    gradient_accumulation_steps: int = 1  # steps whose gradients add up before one optimizer update
    max_length: int = 512  # tokens per training row (prompt and answer); longer rows are truncated, counted in the model summary
    warmup_ratio: float = 0.05  # share of the steps spent warming the learning rate up
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: less memory, more time
    bf16: bool = True  # bfloat16 autocast in the forward and backward passes; weights, optimizer and saved model stay float32
    padding_free: bool = True  # sft: a batch's rows as one sequence, no padding, attention within each row (dpo pads)
    group_by_length: bool = False  # batches of rows of similar length (less padding); order still seeded
    checkpoint_steps: int = 20  # save a resumable training state every this many steps; a killed run resumes from the last

    def validate(self, where: str) -> None:
        require(self.method in ("sft", "dpo"), f"{where}.method must be 'sft' or 'dpo'")
        require(self.start_from in ("previous", "base"), f"{where}.start_from must be 'previous' or 'base'")
        require(self.data in ("iteration", "all"), f"{where}.data must be 'iteration' or 'all'")
        require(0 <= self.replay_fraction < 1, f"{where}.replay_fraction must be in [0, 1)")
        require(self.replay_fraction == 0 or self.data == "iteration",
                 f"{where}.replay_fraction needs data: iteration (data: all already trains on every iteration)")
        require(self.dpo_beta > 0, f"{where}.dpo_beta must be > 0")
        self.lora.validate(f"{where}.lora")
        require(self.epochs > 0, f"{where}.epochs must be > 0")
        require(0 < self.learning_rate < 1, f"{where}.learning_rate must be in (0, 1)")
        for name in ("batch_size", "gradient_accumulation_steps", "max_length", "checkpoint_steps"):
            require(getattr(self, name) >= 1, f"{where}.{name} must be at least 1")
        require(0 <= self.warmup_ratio < 1, f"{where}.warmup_ratio must be in [0, 1)")


@dataclass(frozen=True)
class EvalSetConfig:
    prompts: str  # a prompt file (.jsonl, .csv, .tsv, .parquet): our prompt format, or IFEval's input_data.jsonl
    judge: str  # what scores each answer: ifeval_verifier, or the name of a judge in judge.custom




@dataclass(frozen=True)
class EvaluateConfig:
    max_new_tokens: int = 160  # greedy
    micro_batch_size: int = 128  # answers decoded together
    max_batch_size: int = 128  # elements RunInference hands the model at once
    dtype: str = "bfloat16"  # inference weights: bfloat16 or float32
    device: str = "auto"  # auto (CUDA when the worker has a GPU, else CPU), cpu, cuda or cuda:N
    max_error_share: float = 0.05  # above this share of an eval set's prompts whose checks raised, no accuracy is reported
    # eval sets of your own, answered and scored beside eval and eval_ood: {name: {prompts: FILE, judge: JUDGE}}, FILE
    # in our prompt format or IFEval's input_data.jsonl, JUDGE ifeval_verifier or a judge.custom name; each is
    # written to data/prompts/<name>.parquet and scored in metrics/iter-N.json under `sets`
    sets: dict[str, EvalSetConfig] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        for name in ("max_new_tokens", "micro_batch_size", "max_batch_size"):
            require(getattr(self, name) >= 1, f"{where}.{name} must be at least 1")
        require_dtype(self.dtype, where)
        require_device(self.device, where)
        require(0 <= self.max_error_share <= 1, f"{where}.max_error_share must be in [0, 1]")
        for name, eval_set in self.sets.items():
            require(bool(NAME_PATTERN.match(name)), f"{where}.sets.{name}: the name must be lowercase letters, digits "
                                                 f"and '_', starting with a letter")
            require(name not in SPLITS, f"{where}.sets.{name}: {name!r} is a built-in prompt set; pick "
                                                     f"another name")
            require(bool(eval_set.prompts.strip()), f"{where}.sets.{name}.prompts must name a prompt file")

    def judge_of(self) -> dict[str, str]:
        """{eval set: the judge that scores it}: eval and eval_ood by the IFEval verifier, then your own sets."""
        return {**{split: REFERENCE for split in EVAL_SPLITS}, **{name: s.judge for name, s in self.sets.items()}}

    def eval_sets(self) -> tuple[str, ...]:
        """Every eval set's name, eval and eval_ood first: what evaluate answers and curate decontaminates against."""
        return tuple(self.judge_of())


_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


@dataclass(frozen=True)
class PublishConfig:
    repo_id: str = "selfsift/ifeval-smollm2-selfsift"  # ORG/NAME of the Hub dataset; `selfsift publish --repo-id` overrides it
    private: bool = True  # create the Hub repo private
    license: str = "apache-2.0"  # of the generated data; SmolLM2 is Apache-2.0
    folder: str = "publish"  # where the Hub-ready folder is built (replaced on every build): publish or publish/...

    def validate(self, where: str) -> None:
        require(not self.repo_id or (bool(_REPO_ID.match(self.repo_id)) and ".." not in self.repo_id
                                      and "--" not in self.repo_id),
                 f"{where}.repo_id: {self.repo_id!r} is not a Hub repo id (ORG/NAME)")
        require(bool(self.license), f"{where}.license must name a license")
        _require_output_path(self.folder, f"{where}.folder", "publish", nested=False)


@dataclass(frozen=True)
class ReportConfig:
    run: str = "loop"  # the name this run's record is filed under (reports/runs/<run>-seed<seed>.json)

    def validate(self, where: str) -> None:
        require(bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*", self.run)), f"{where}.run: {self.run!r} must be a plain name "
                                                                      f"(letters, digits, '.', '_', '-')")


@dataclass(frozen=True)
class StorageConfig:
    # "" keeps data and models in the project folder (what DVC tracks). A URL such as
    # gs://bucket/selfsift puts them there instead, for stages run on Dataflow (docs/dataflow.md).
    root: str = ""

    def validate(self, where: str) -> None:
        require(not self.root or ("://" in self.root and ".." not in self.root.split("/")),
                 f"{where}.root: {self.root!r} must be empty (the project folder) or a URL such as gs://bucket/path")


@dataclass(frozen=True)
class SecurityConfig:
    trust_remote_code: bool = False  # run Python code shipped inside a model folder (auto_map)
    allow_pickle_checkpoints: bool = False  # load .bin/.pt checkpoints, which can run code when read
    allow_unpinned: bool = False  # accept hf://OWNER/NAME@BRANCH (or no revision): resolved to a commit at download

    def load_policy(self) -> LoadPolicy:
        return LoadPolicy(trust_remote_code=self.trust_remote_code, allow_pickle=self.allow_pickle_checkpoints)


@dataclass(frozen=True)
class IterationConfig:
    generator: str  # "base", or the name of an earlier iteration whose model generates this one


@dataclass(frozen=True)
class Config:
    seed: int  # the loop's seed: sampling, training order, control samples (not the prompts)
    base_model: BaseModelConfig
    # One entry per iteration, each generated by the model named in `generator` ("base" or an earlier
    # iteration). Adding `iter-003: {generator: iter-002}` makes `dvc repro` run just the new iteration.
    iterations: dict[str, IterationConfig]
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    revise: ReviseConfig = field(default_factory=ReviseConfig)
    curate: CurateConfig = field(default_factory=CurateConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    beam: BeamConfig = field(default_factory=BeamConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)

    def iteration_name(self, iteration: str | int) -> str:
        name = iteration_name(iteration)
        if name not in self.iterations:
            raise ConfigError(f"iteration {name} is not listed under 'iterations' in params.yaml "
                              f"(listed: {', '.join(self.iterations) or 'none'})")
        return name

    @property
    def layout(self) -> Layout:
        return Layout(self.storage.root, self.prompts.out_dir, self.base_model.path)

    def generator_dir(self, iteration: str) -> str:
        return self.layout.model(self.iterations[iteration].generator)


# Every param that names a model: a local path, a Hub model (hf://OWNER/NAME@COMMIT) or, for the judges'
# and the embedder's, a folder under a remote storage root (gs://...).
MODEL_PARAMS = ("base_model.source", *(f"judge.{spec.params_key}.model" for spec in JUDGES if spec.kind == "model"),
                "curate.semantic_dedup.model")

_ITERATION = re.compile(r"^(?:iter-)?(\d{1,3})$")


def iteration_name(value: str | int) -> str:
    match = _ITERATION.match(str(value))
    if not match:
        raise ConfigError(f"iteration {value!r}: expected a number such as 1 or a name such as iter-001")
    return f"iter-{int(match.group(1)):03d}"


def iteration_number(name: str) -> int:
    return int(iteration_name(name)[5:])


def _require_output_path(path: str, where: str, root: str, nested: bool = True) -> None:
    """Outputs stay inside the project: a relative path under `root` (or `root` itself when not
    nested), without `..`."""
    parts = Path(path).parts
    require(bool(parts) and not Path(path).is_absolute() and ".." not in parts and parts[0] == root
             and (len(parts) >= 2 or not nested),
             f"{where}: {path!r} must be a relative path inside {root}/ (no absolute paths, no '..')")


def _coerce(value, typ, where: str):
    if dataclasses.is_dataclass(typ):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return _build(typ, value, where)
    origin = typing.get_origin(typ)
    if origin is dict:
        _, value_type = typing.get_args(typ)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return {str(k): _coerce(v, value_type, f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        (item_type,) = typing.get_args(typ)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        return [_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ is float and isinstance(value, str):
        try:
            return float(value)  # YAML reads 5e-5 as a string
        except ValueError:
            pass
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {typ.__name__}, got {value!r}")
    return value


def _build(cls, data: dict, where: str):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}: missing required key {f.name!r}")
    obj = cls(**kwargs)
    if callable(getattr(cls, "validate", None)):
        obj.validate(where)
    return obj


def _validate_iterations(config: Config, where: str) -> None:
    seen = [BASE]
    for name, it in config.iterations.items():
        if iteration_name(name) != name:
            raise ConfigError(f"{where}.iterations: name {name!r} must be written as {iteration_name(name)}")
        if it.generator not in seen:
            raise ConfigError(f"{where}.iterations.{name}.generator: {it.generator!r} must be 'base' or an "
                              f"earlier iteration ({', '.join(seen)})")
        seen.append(name)


def _validate_judges(config: Config, where: str) -> None:
    judges, curate = config.judge, config.curate
    weighable = [spec.name for spec in judges.specs() if spec.weighable]
    models = [spec.name for spec in judges.specs() if spec.kind == "model"]  # what the calibration floor applies to
    for key, names, known in (("weights", curate.weights, weighable),
                              ("allow_low_auc_judges", curate.allow_low_auc_judges, models)):
        for name in names:
            require(name in known, f"{where}: curate.{key}: {name!r} is not one of {', '.join(known)}")
    enabled = judges.enabled()
    for name in curate.gating():
        require(name in enabled, f"{where}: curate.weights.{name} > 0 but judge.{judges.spec(name).params_key} is "
                                 f"not enabled")


def _validate_eval_sets(config: Config, where: str) -> None:
    scoring = [spec.name for spec in config.judge.specs() if spec.kind in SCORING_KINDS]
    for name, eval_set in config.evaluate.sets.items():
        key = f"{where}: evaluate.sets.{name}.judge"
        require(eval_set.judge in config.judge.known(), f"{key}: unknown judge {eval_set.judge!r} (a set is scored "
                                                        f"by one of: {', '.join(scoring)})")
        spec = config.judge.spec(eval_set.judge)
        require(spec.kind in SCORING_KINDS, f"{key}: {eval_set.judge!r} is a {spec.kind} judge, which cannot score "
                                            f"an eval set; use one of: {', '.join(scoring)}")


def _validate_control(config: Config, where: str) -> None:
    cfg = config.curate
    if cfg.control == "none":
        return
    require(not config.revise.enabled, f"{where}: revise.enabled needs curate.control: none (a control keeps a "
                                        f"random sample, so no answer fails for a revision to fix)")
    missing = [name for name in config.iterations if name not in cfg.control_rows]
    require(not missing, f"{where}: curate.control is {cfg.control!r}, so curate.control_rows needs the number of "
                          f"rows to keep for {', '.join(missing)} (the filtered run's kept count)")


def calibration_samples(config: Config) -> dict[str, int]:
    """{judge model: its sample size} of the judge models that score a calibration sample only: a deciding judge
    (weight > 0 in curate.weights) scores every candidate whatever its `calibration_sample`."""
    return config.judge.calibration_samples(config.curate.gating())


def _uses_model(section: object) -> bool:
    """A judge's model is in use when it runs here (a judge may run on a server instead), the embedder when
    semantic dedup is enabled, the base model always."""
    if isinstance(section, JudgeSettings):
        return section.runs_local_model()
    if isinstance(section, SemanticDedupConfig):
        return section.enabled
    return True


def models_in_use(config: Config) -> dict[str, str]:
    """{key: model} of the model params whose section is enabled (the base model's always is)."""
    in_use = {}
    for key in MODEL_PARAMS:
        *path, name = key.split(".")
        section = functools.reduce(getattr, path, config)
        if _uses_model(section):
            in_use[key] = getattr(section, name)
    return in_use


def _validate_model_sources(config: Config, where: str) -> None:
    """A Hub model in use is pinned to a commit, unless security.allow_unpinned says otherwise."""
    require(not (hub_models.is_hub_id(config.base_model.source) and config.base_model.sha256),
            f"{where}: base_model.sha256 is the checksum of a GGUF file; a Hub source is pinned by its commit, so "
            f"set it to \"\"")
    for key, source in models_in_use(config).items():
        if not hub_models.is_hub_id(source):
            continue
        try:
            model = hub_models.parse(source)
        except ValueError as exc:
            raise ConfigError(f"{where}: {key}: {exc}") from None
        require(model.pinned or config.security.allow_unpinned,
                f"{where}: {key}: {source} is not pinned to a commit, so it may name other weights tomorrow; "
                f"{hub_models.how_to_pin(model)} (or set security.allow_unpinned: true to download what it names "
                f"at the time, recording that commit)")


def load(path: str | Path = "params.yaml") -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameters file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    config = _build(Config, data, str(path))
    _validate_iterations(config, str(path))
    _validate_judges(config, str(path))
    _validate_eval_sets(config, str(path))
    _validate_control(config, str(path))
    _validate_model_sources(config, str(path))
    return config
