"""Typed configuration read from params.yaml, validated before any work starts.

Unknown keys, wrong types and out-of-range values fail with the offending key named.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from transforms.judge_names import LLM_JUDGE, REWARD_MODEL, SCORING_JUDGES, VERIFIER
from transforms.model_io import LoadPolicy


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class BaseModelConfig:
    source: str  # a GGUF file, or a folder holding a transformers model in safetensors
    sha256: str = ""  # expected checksum of a GGUF source; empty skips the check
    path: str = "models/base"
    init: str = "pretrained"  # "pretrained": the source's weights; "random": its architecture, randomly initialised

    def validate(self, where: str) -> None:
        _require_output_path(self.path, f"{where}.path", "models")
        _require(self.init in ("pretrained", "random"), f"{where}.init must be 'pretrained' or 'random'")


@dataclass(frozen=True)
class PromptsConfig:
    source: str = "builtin"  # "builtin", or a JSONL/Parquet file of your own train prompts
    train_size: int = 300
    eval_size: int = 150
    eval_ood_size: int = 150
    max_constraints: int = 3
    seed: int = 1234  # the prompt sets' own seed, so that runs with another loop seed share the eval sets
    out_dir: str = "data/prompts"

    def validate(self, where: str) -> None:
        for name in ("train_size", "eval_size", "eval_ood_size", "max_constraints"):
            _require(getattr(self, name) >= 1, f"{where}.{name} must be at least 1")
        _require_output_path(self.out_dir, f"{where}.out_dir", "data")


@dataclass(frozen=True)
class GenerateConfig:
    backend: str = "transformers"  # "transformers" (CPU or GPU), or "vllm" (GPU workers; see README)
    vllm_server_kwargs: dict[str, str] = field(default_factory=dict)  # extra `vllm serve` flags
    candidates_per_prompt: int = 4
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 0
    max_new_tokens: int = 128
    micro_batch_size: int = 16
    max_batch_size: int = 64
    max_prompt_tokens: int = 1024
    num_shards: int = 4
    resumable: bool = True  # one Beam run per shard, so a crash loses at most the unfinished shards
    dtype: str = "bfloat16"  # inference weights: bfloat16 generates ~1.8x faster than float32 here

    def validate(self, where: str) -> None:
        _require(self.backend in ("transformers", "vllm"), f"{where}.backend must be 'transformers' or 'vllm'")
        _require(self.candidates_per_prompt >= 1, f"{where}.candidates_per_prompt must be at least 1")
        _require(self.temperature >= 0, f"{where}.temperature must be >= 0 (0 is greedy)")
        _require(0 < self.top_p <= 1, f"{where}.top_p must be in (0, 1]")
        _require(self.top_k >= 0, f"{where}.top_k must be >= 0 (0 disables it)")
        for name in ("max_new_tokens", "micro_batch_size", "max_batch_size", "max_prompt_tokens", "num_shards"):
            _require(getattr(self, name) >= 1, f"{where}.{name} must be at least 1")
        _require_dtype(self.dtype, where)


@dataclass(frozen=True)
class VerifierConfig:
    threshold: float = 1.0  # passed: at least this share of the prompt's constraints followed

    def validate(self, where: str) -> None:
        _require(0 <= self.threshold <= 1, f"{where}.threshold must be in [0, 1]")


@dataclass(frozen=True)
class ModelJudgeConfig:
    enabled: bool = False
    model: str = ""  # a local folder with a safetensors model
    threshold: float = 0.5  # passed: score (in [0, 1]) at least this
    max_input_tokens: int = 1024  # longer inputs are rejected as unscorable, not truncated
    micro_batch_size: int = 16
    max_batch_size: int = 64
    dtype: str = "bfloat16"

    def validate(self, where: str) -> None:
        _require(not self.enabled or bool(self.model), f"{where}.model must name a model folder when enabled")
        _require(0 <= self.threshold <= 1, f"{where}.threshold must be in [0, 1]")
        for name in ("max_input_tokens", "micro_batch_size", "max_batch_size"):
            _require(getattr(self, name) >= 1, f"{where}.{name} must be at least 1")
        _require_dtype(self.dtype, where)


@dataclass(frozen=True)
class HeuristicsConfig:
    min_words: int = 1
    max_words: int = 400
    repetition_ngram: int = 3  # word n-grams counted for the repetition share
    max_repeated_ngram_share: float = 0.3  # share of n-gram occurrences that repeat an earlier one
    max_prompt_echo: float = 0.8  # share of an answer's words copied from the prompt that makes it an echo
    drop_truncated: bool = True  # reject answers that hit max_new_tokens

    def validate(self, where: str) -> None:
        _require(self.min_words >= 1, f"{where}.min_words must be at least 1")
        _require(self.max_words >= self.min_words, f"{where}.max_words must be >= min_words")
        _require(self.repetition_ngram >= 1, f"{where}.repetition_ngram must be at least 1")
        _require(0 < self.max_repeated_ngram_share <= 1, f"{where}.max_repeated_ngram_share must be in (0, 1]")
        _require(0 < self.max_prompt_echo <= 1, f"{where}.max_prompt_echo must be in (0, 1]")


@dataclass(frozen=True)
class JudgeConfig:
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    llm_judge: ModelJudgeConfig = field(default_factory=ModelJudgeConfig)
    reward_model: ModelJudgeConfig = field(default_factory=ModelJudgeConfig)
    heuristics: HeuristicsConfig = field(default_factory=HeuristicsConfig)
    num_shards: int = 4

    def validate(self, where: str) -> None:
        _require(self.num_shards >= 1, f"{where}.num_shards must be at least 1")

    def enabled(self) -> list[str]:
        """The scoring judges that run (the heuristics always run)."""
        return [VERIFIER] + [name for name in (LLM_JUDGE, REWARD_MODEL) if getattr(self, name).enabled]

    def threshold(self, name: str) -> float:
        return {VERIFIER: self.verifier.threshold, LLM_JUDGE: self.llm_judge.threshold,
                REWARD_MODEL: self.reward_model.threshold}[name]


@dataclass(frozen=True)
class NearDedupConfig:
    enabled: bool = True
    ngram: int = 5  # word shingles
    num_perm: int = 128  # MinHash permutations
    bands: int = 32  # LSH bands of num_perm / bands rows; must divide num_perm
    threshold: float = 0.7  # estimated Jaccard similarity at which two answers are near-duplicates

    def validate(self, where: str) -> None:
        _require(self.ngram >= 1, f"{where}.ngram must be at least 1")
        _require(self.bands >= 1 and self.num_perm % self.bands == 0,
                 f"{where}.bands must be at least 1 and divide num_perm ({self.num_perm})")
        _require(0 < self.threshold <= 1, f"{where}.threshold must be in (0, 1]")


@dataclass(frozen=True)
class SemanticDedupConfig:
    enabled: bool = False
    model: str = ".cache/all-minilm-l6-v2"  # sentence embedding model folder (`make embedder`)
    threshold: float = 0.95  # cosine similarity at which two answers are semantic duplicates
    scope: str = "within_prompt"  # "within_prompt", or "global" (across prompts too)
    batch_size: int = 64

    def validate(self, where: str) -> None:
        _require(-1 <= self.threshold <= 1, f"{where}.threshold must be in [-1, 1]")
        _require(self.scope in ("within_prompt", "global"), f"{where}.scope must be 'within_prompt' or 'global'")
        _require(self.batch_size >= 1, f"{where}.batch_size must be at least 1")


@dataclass(frozen=True)
class DecontaminationConfig:
    enabled: bool = True
    ngram: int = 13  # word n-grams shared with any eval text
    extra_eval_files: list[str] = field(default_factory=list)  # .jsonl/.parquet/.txt files of more eval text

    def validate(self, where: str) -> None:
        _require(self.ngram >= 1, f"{where}.ngram must be at least 1")


@dataclass(frozen=True)
class PairsConfig:
    enabled: bool = True
    min_margin: float = 0.5  # chosen score minus rejected score

    def validate(self, where: str) -> None:
        _require(0 <= self.min_margin <= 1, f"{where}.min_margin must be in [0, 1]")


CONTROLS = ("none", "no_filter", "random_judge")


@dataclass(frozen=True)
class CurateConfig:
    combine: str = "all_pass"  # "all_pass": every weighted judge passed; "weighted": weighted score >= min_score
    weights: dict[str, float] = field(default_factory=lambda: {VERIFIER: 1.0})  # judges left out weigh 0
    min_score: float = 0.5  # for combine: weighted
    judge_auc_floor: float = 0.6  # refuse a weighted model judge whose ROC AUC vs the verifier is lower
    allow_low_auc_judges: list[str] = field(default_factory=list)  # use these anyway, on purpose
    max_per_prompt: int = 2  # best-of-K: a prompt's best this many distinct answers
    max_per_instruction_type: int = 0  # balance; 0 disables
    top_fraction: float = 1.0  # then keep the best this share overall
    near_dedup: NearDedupConfig = field(default_factory=NearDedupConfig)
    semantic_dedup: SemanticDedupConfig = field(default_factory=SemanticDedupConfig)
    decontamination: DecontaminationConfig = field(default_factory=DecontaminationConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    num_shards: int = 2
    # Controls for ablations: "no_filter" keeps a random sample of all usable candidates (no heuristics,
    # judges, near dedup or selection); "random_judge" applies heuristics and dedup, then keeps a random
    # sample in place of the judges and selection. Both keep control_rows[iteration] rows.
    control: str = "none"
    control_rows: dict[str, int] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        _require(self.combine in ("all_pass", "weighted"), f"{where}.combine must be 'all_pass' or 'weighted'")
        for name, weight in self.weights.items():
            _require(name in SCORING_JUDGES,
                     f"{where}.weights: unknown judge {name!r} (known: {', '.join(SCORING_JUDGES)})")
            _require(weight >= 0, f"{where}.weights.{name} must be >= 0")
        _require(any(w > 0 for w in self.weights.values()), f"{where}.weights: at least one judge needs weight > 0")
        _require(0 <= self.min_score <= 1, f"{where}.min_score must be in [0, 1]")
        _require(0 <= self.judge_auc_floor <= 1, f"{where}.judge_auc_floor must be in [0, 1]")
        for name in self.allow_low_auc_judges:
            _require(name in SCORING_JUDGES, f"{where}.allow_low_auc_judges: unknown judge {name!r}")
        _require(self.max_per_prompt >= 1, f"{where}.max_per_prompt must be at least 1")
        _require(self.max_per_instruction_type >= 0, f"{where}.max_per_instruction_type must be >= 0")
        _require(0 < self.top_fraction <= 1, f"{where}.top_fraction must be in (0, 1]")
        _require(self.num_shards >= 1, f"{where}.num_shards must be at least 1")
        _require(self.control in CONTROLS, f"{where}.control must be one of {', '.join(CONTROLS)}")
        for name, rows in self.control_rows.items():
            _require(rows >= 1, f"{where}.control_rows.{name} must be at least 1")

    def gating_judges(self) -> list[str]:
        return sorted(name for name, weight in self.weights.items() if weight > 0)


@dataclass(frozen=True)
class ValidateConfig:
    severity: dict[str, str] = field(default_factory=dict)  # expectation id -> "fail" | "warn"; unlisted: fail

    def validate(self, where: str) -> None:
        from schemas.expectations import EXPECTATION_IDS, SEVERITIES

        for expectation_id, level in self.severity.items():
            _require(expectation_id in EXPECTATION_IDS, f"{where}.severity: unknown expectation {expectation_id!r} "
                                                        f"(see schemas/expectations.py)")
            _require(level in SEVERITIES, f"{where}.severity.{expectation_id} must be 'fail' or 'warn'")


@dataclass(frozen=True)
class LoraConfig:
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str = "all-linear"  # peft's name for every linear layer but the output head

    def validate(self, where: str) -> None:
        _require(self.r >= 1 and self.alpha >= 1, f"{where}.r and {where}.alpha must be at least 1")
        _require(0 <= self.dropout < 1, f"{where}.dropout must be in [0, 1)")


@dataclass(frozen=True)
class FinetuneConfig:
    method: str = "sft"  # "sft" on the kept shards, or "dpo" on the preference pairs
    start_from: str = "previous"  # "previous": continue training the generator; "base": retrain the base (ReST-EM)
    data: str = "iteration"  # "iteration": this iteration's shards; "all": every iteration's so far
    replay_fraction: float = 0.0  # with data: iteration, this share of the training rows comes from earlier iterations
    dpo_beta: float = 0.1
    lora: LoraConfig = field(default_factory=LoraConfig)
    epochs: float = 2.0
    learning_rate: float = 5e-5
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_length: int = 512
    warmup_ratio: float = 0.05
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: less memory, more time

    def validate(self, where: str) -> None:
        _require(self.method in ("sft", "dpo"), f"{where}.method must be 'sft' or 'dpo'")
        _require(self.start_from in ("previous", "base"), f"{where}.start_from must be 'previous' or 'base'")
        _require(self.data in ("iteration", "all"), f"{where}.data must be 'iteration' or 'all'")
        _require(0 <= self.replay_fraction < 1, f"{where}.replay_fraction must be in [0, 1)")
        _require(self.replay_fraction == 0 or self.data == "iteration",
                 f"{where}.replay_fraction needs data: iteration (data: all already trains on every iteration)")
        _require(self.dpo_beta > 0, f"{where}.dpo_beta must be > 0")
        self.lora.validate(f"{where}.lora")
        _require(self.epochs > 0, f"{where}.epochs must be > 0")
        _require(0 < self.learning_rate < 1, f"{where}.learning_rate must be in (0, 1)")
        for name in ("batch_size", "gradient_accumulation_steps", "max_length"):
            _require(getattr(self, name) >= 1, f"{where}.{name} must be at least 1")
        _require(0 <= self.warmup_ratio < 1, f"{where}.warmup_ratio must be in [0, 1)")


@dataclass(frozen=True)
class EvaluateConfig:
    max_new_tokens: int = 192
    micro_batch_size: int = 16
    max_batch_size: int = 64
    dtype: str = "bfloat16"

    def validate(self, where: str) -> None:
        for name in ("max_new_tokens", "micro_batch_size", "max_batch_size"):
            _require(getattr(self, name) >= 1, f"{where}.{name} must be at least 1")
        _require_dtype(self.dtype, where)


_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


@dataclass(frozen=True)
class PublishConfig:
    repo_id: str = ""  # ORG/NAME of the Hub dataset; `selfsift publish --repo-id` overrides it
    private: bool = True
    license: str = "apache-2.0"  # of the generated data; SmolLM2 is Apache-2.0
    folder: str = "publish"  # where the Hub-ready folder is built (replaced on every build): publish or publish/...

    def validate(self, where: str) -> None:
        _require(not self.repo_id or (bool(_REPO_ID.match(self.repo_id)) and ".." not in self.repo_id
                                      and "--" not in self.repo_id),
                 f"{where}.repo_id: {self.repo_id!r} is not a Hub repo id (ORG/NAME)")
        _require(bool(self.license), f"{where}.license must name a license")
        _require_output_path(self.folder, f"{where}.folder", "publish", nested=False)


@dataclass(frozen=True)
class ReportConfig:
    run: str = "loop"  # the name this run's record is filed under (reports/runs/<run>-seed<seed>.json)

    def validate(self, where: str) -> None:
        _require(bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*", self.run)), f"{where}.run: {self.run!r} must be a plain name "
                                                                      f"(letters, digits, '.', '_', '-')")


@dataclass(frozen=True)
class StorageConfig:
    # "" keeps data and models in the project folder (what DVC tracks). A URL such as
    # gs://bucket/selfsift puts them there instead, for stages run on Dataflow (README).
    root: str = ""

    def validate(self, where: str) -> None:
        _require(not self.root or ("://" in self.root and ".." not in self.root.split("/")),
                 f"{where}.root: {self.root!r} must be empty (the project folder) or a URL such as gs://bucket/path")


@dataclass(frozen=True)
class SecurityConfig:
    trust_remote_code: bool = False  # run Python code shipped inside a model folder (auto_map)
    allow_pickle_checkpoints: bool = False  # load .bin/.pt checkpoints, which can run code when read

    def load_policy(self) -> LoadPolicy:
        return LoadPolicy(trust_remote_code=self.trust_remote_code, allow_pickle=self.allow_pickle_checkpoints)


@dataclass(frozen=True)
class IterationConfig:
    generator: str  # "base", or the name of an earlier iteration whose model generates this one


@dataclass(frozen=True)
class Config:
    seed: int
    base_model: BaseModelConfig
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    curate: CurateConfig = field(default_factory=CurateConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    iterations: dict[str, IterationConfig] = field(default_factory=dict)

    def iteration_name(self, iteration: str | int) -> str:
        name = iteration_name(iteration)
        if name not in self.iterations:
            raise ConfigError(f"iteration {name} is not listed under 'iterations' in params.yaml "
                              f"(listed: {', '.join(self.iterations) or 'none'})")
        return name

    def at_root(self, path: str) -> str:
        """A project-relative data or model path, under storage.root when one is set."""
        return f"{self.storage.root.rstrip('/')}/{path}" if self.storage.root else path

    def prompts_file(self, split: str) -> str:
        return self.at_root(f"{self.prompts.out_dir}/{split}.parquet")

    def model_dir(self, name: str) -> str:
        return self.at_root(self.base_model.path if name == "base" else f"models/{name}")

    def generator_dir(self, iteration: str) -> str:
        return self.model_dir(self.iterations[iteration].generator)


_ITERATION = re.compile(r"^(?:iter-)?(\d{1,3})$")


def iteration_name(value: str | int) -> str:
    match = _ITERATION.match(str(value))
    if not match:
        raise ConfigError(f"iteration {value!r}: expected a number such as 1 or a name such as iter-001")
    return f"iter-{int(match.group(1)):03d}"


def iteration_number(name: str) -> int:
    return int(iteration_name(name)[5:])


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _require_output_path(path: str, where: str, root: str, nested: bool = True) -> None:
    """Outputs stay inside the project: a relative path under `root` (or `root` itself when not
    nested), without `..`."""
    parts = Path(path).parts
    _require(bool(parts) and not Path(path).is_absolute() and ".." not in parts and parts[0] == root
             and (len(parts) >= 2 or not nested),
             f"{where}: {path!r} must be a relative path inside {root}/ (no absolute paths, no '..')")


def _require_dtype(dtype: str, where: str) -> None:
    _require(dtype in ("float32", "bfloat16"), f"{where}.dtype must be 'float32' or 'bfloat16'")


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
    seen = ["base"]
    for name, it in config.iterations.items():
        if iteration_name(name) != name:
            raise ConfigError(f"{where}.iterations: name {name!r} must be written as {iteration_name(name)}")
        if it.generator not in seen:
            raise ConfigError(f"{where}.iterations.{name}.generator: {it.generator!r} must be 'base' or an "
                              f"earlier iteration ({', '.join(seen)})")
        seen.append(name)


def _validate_judges(config: Config, where: str) -> None:
    enabled = config.judge.enabled()
    for name in config.curate.gating_judges():
        _require(name in enabled, f"{where}: curate.weights.{name} > 0 but judge.{name} is not enabled")


def _validate_control(config: Config, where: str) -> None:
    cfg = config.curate
    if cfg.control == "none":
        return
    missing = [name for name in config.iterations if name not in cfg.control_rows]
    _require(not missing, f"{where}: curate.control is {cfg.control!r}, so curate.control_rows needs the number of "
                          f"rows to keep for {', '.join(missing)} (the filtered run's kept count)")


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
    _validate_control(config, str(path))
    return config
