"""What judges served by an OpenAI-compatible server share (vLLM, llama.cpp server, TGI, OpenAI):
their `endpoint` settings, an HTTP client and a Beam `ModelHandler` base.

The handler keeps the contract of `scoring_models.ScoringHandler` (ScoreRequest in, JudgeResult
out), so `ModelJudge` runs it unchanged. A request that cannot be scored (an empty answer, a server
that times out, refuses or answers something unreadable) gets a result with an `error`: a counted
judge_error downstream, never a failed batch. Timeouts, connection errors, 5xx and 429 are retried
with exponential backoff, at most `max_retries` times; other 4xx are not.

The API key is read from the environment where it is used (the stage's process for the probe, each
worker for the requests): it is never part of the pickled pipeline, and never in a result or a log
line, even when a server echoes it back.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPException
from typing import Iterable, Optional, Sequence
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from transforms.judges.contract import JudgeResult
from transforms.judges.scoring_models import ModelJudgeConfig, ScoreRequest
from transforms.settings import ConfigError, require, require_at_least_one

log = logging.getLogger("selfsift.judge")

MAX_RETRIES = 10  # the bound on `max_retries`
MAX_TOP_LOGPROBS = 20  # OpenAI's limit (and vLLM's default max_logprobs)
PROBE_TIMEOUT_S = 10.0  # the start-of-stage probe waits at most this (or timeout_s, if shorter)
BACKOFF_S = 0.5  # the wait before the first retry; it doubles with each further one
MAX_BACKOFF_S = 30.0
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class EndpointConfig:
    # an OpenAI-compatible server's URL with its /v1 prefix, e.g. http://localhost:8000/v1; "" judges with the
    # local `model` instead
    base_url: str = ""
    model: str = ""  # the served model name the requests ask for (as listed by GET {base_url}/models)
    timeout_s: float = 30.0  # per request: connecting, and each wait for the reply
    max_retries: int = 3  # retries (0 to 10, backing off) after a timeout, connection error, 5xx or 429; other 4xx fail at once
    concurrency: int = 8  # requests in flight at once, per worker process
    # name of the environment variable holding the API key (e.g. OPENAI_API_KEY), sent as a bearer token; "" sends
    # none. The key itself never goes into params, logs or records
    api_key_env: str = ""
    top_logprobs: int = 20  # alternatives asked for each token (1 to 20, OpenAI's limit)

    @property
    def enabled(self) -> bool:
        return bool(self.base_url)

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/")

    def validate(self, where: str) -> None:
        require(not self.base_url or _is_http_url(self.base_url),
                f"{where}.base_url: {self.base_url!r} must be empty or an http(s) URL with no credentials, query or "
                f"fragment, such as http://localhost:8000/v1")
        require(not self.base_url or bool(self.model), f"{where}.model must name the served model when base_url is set")
        require(self.timeout_s > 0, f"{where}.timeout_s must be > 0")
        require(0 <= self.max_retries <= MAX_RETRIES, f"{where}.max_retries must be in [0, {MAX_RETRIES}]")
        require_at_least_one(self, where, "concurrency")
        require(not self.api_key_env or bool(_ENV_NAME.fullmatch(self.api_key_env)),
                f"{where}.api_key_env must name an environment variable, such as OPENAI_API_KEY (not hold the key: "
                f"it is not repeated here)")
        require(1 <= self.top_logprobs <= MAX_TOP_LOGPROBS, f"{where}.top_logprobs must be in [1, {MAX_TOP_LOGPROBS}]")

    def identity(self) -> dict:
        """What identifies the judge model: the server and the name it serves it under."""
        return {"base_url": self.url, "model": self.model}


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a malformed port
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc
            and not parts.query and not parts.fragment)


class EndpointError(Exception):
    """A request that got no usable reply; its message becomes the candidate's judge_error."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status  # the last HTTP status, if the server answered


class BadReply(ValueError):
    """A reply that came back but cannot be scored."""


def reply_field(reply, *path):
    """reply[path[0]][path[1]]...; a missing step raises BadReply naming the path up to it."""
    value, walked = reply, ""
    for step in path:
        walked += f"[{step}]" if isinstance(step, int) else f".{step}"
        container = list if isinstance(step, int) else dict
        if not isinstance(value, container) or (step >= len(value) if isinstance(step, int) else step not in value):
            raise BadReply(f"reply has no {walked.lstrip('.')}")
        value = value[step]
    return value


def api_key(endpoint: EndpointConfig, where: str) -> str:
    """The key from the environment variable `api_key_env` names ("" when it names none)."""
    if not endpoint.api_key_env:
        return ""
    key = os.environ.get(endpoint.api_key_env, "")
    require(bool(key), f"{where}.api_key_env: the environment variable {endpoint.api_key_env} is not set")
    return key


class EndpointClient:
    """Requests to one server, at most `concurrency` in flight, each retried as configured.

    Made by the handler's load_model on each worker, never pickled: it holds the API key."""

    def __init__(self, endpoint: EndpointConfig, key: str = ""):
        self._endpoint, self._key = endpoint, key
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        self._pool = ThreadPoolExecutor(max_workers=endpoint.concurrency, thread_name_prefix="judge-endpoint")

    def __repr__(self) -> str:
        return f"EndpointClient({self._endpoint.url}, model={self._endpoint.model!r})"

    def submit_chat(self, payload: dict) -> Future:
        """POSTs {base_url}/chat/completions from the pool; the future's result is the parsed reply, or it raises
        EndpointError / BadReply."""
        body = json.dumps({"model": self._endpoint.model, **payload}).encode()
        return self._pool.submit(self._send, f"{self._endpoint.url}/chat/completions", body)

    def get(self, path: str, timeout_s: float) -> dict:
        """One GET of {base_url}/{path}, not retried (the probe)."""
        return self._send(f"{self._endpoint.url}/{path}", None, attempts=1, timeout_s=timeout_s)

    def _send(self, url: str, body: bytes | None, attempts: int | None = None, timeout_s: float | None = None) -> dict:
        attempts = attempts or self._endpoint.max_retries + 1
        timeout_s = timeout_s or self._endpoint.timeout_s
        request = Request(url, data=body, headers=self._headers, method="GET" if body is None else "POST")
        if self._key:  # never sent on to where a redirect points
            request.add_unredirected_header("Authorization", f"Bearer {self._key}")
        problem, status = "", None
        for attempt in range(attempts):
            if attempt:
                log.debug("%s: %s; retry %d of %d", url, problem, attempt, attempts - 1)
                time.sleep(min(BACKOFF_S * 2 ** (attempt - 1), MAX_BACKOFF_S))
            try:
                with urlopen(request, timeout=timeout_s) as response:
                    raw = response.read()
            except HTTPError as exc:
                problem, status = f"HTTP {exc.code} {exc.reason}{_body_excerpt(exc, self.redact)}", exc.code
                if exc.code != 429 and exc.code < 500:
                    raise EndpointError(problem, status) from None
            except (OSError, HTTPException) as exc:  # timeouts, refused or reset connections, broken replies
                problem, status = self.redact(_transport_problem(exc, timeout_s)), None
            else:
                return _parse_json(raw, self.redact)
        raise EndpointError(f"{problem} (after {attempts} attempts)" if attempts > 1 else problem, status)

    def redact(self, text: str) -> str:
        """The text with the API key, should a server echo it, blanked out."""
        return text.replace(self._key, "[api key]") if self._key else text


def _body_excerpt(exc: HTTPError, redact) -> str:
    try:
        text = exc.read().decode("utf-8", "replace")
    except (OSError, HTTPException):
        return ""
    text = " ".join(redact(text).split())[:200]  # redacted before it is cut: no key prefix survives
    return f": {text}" if text else ""


def _transport_problem(exc: BaseException, timeout_s: float) -> str:
    reason = exc.reason if isinstance(exc, URLError) else exc
    if isinstance(reason, TimeoutError):
        return f"no reply within timeout_s {timeout_s:g}"
    return f"connection failed: {reason}"


def _parse_json(raw: bytes, redact) -> dict:
    try:
        reply = json.loads(raw)
    except ValueError:
        excerpt = " ".join(redact(raw.decode("utf-8", "replace")).split())[:100]
        raise BadReply(f"reply is not JSON: {excerpt!r}") from None
    if not isinstance(reply, dict):
        raise BadReply(f"reply is a JSON {type(reply).__name__}, not an object")
    return reply


def probe(endpoint: EndpointConfig, key: str, where: str) -> None:
    """Fails, naming the param, when the server cannot be reached, refuses the key or does not serve the model."""
    url = f"{endpoint.url}/models"
    try:
        listing = EndpointClient(endpoint, key).get("models", min(endpoint.timeout_s, PROBE_TIMEOUT_S))
    except EndpointError as exc:
        if exc.status in (401, 403):
            raise ConfigError(f"{where}.api_key_env: {url} refused the request ({exc})") from None
        raise ConfigError(f"{where}.base_url: cannot reach the judge server at {url} ({exc})") from None
    except BadReply as exc:
        raise ConfigError(f"{where}.base_url: {url} is not an OpenAI-compatible server ({exc})") from None
    served = [m.get("id") for m in listing.get("data") or [] if isinstance(m, dict)]
    require(endpoint.model in served, f"{where}.model: {endpoint.model!r} is not served at {url} "
                                      f"(it serves: {', '.join(map(str, served)) or 'nothing'})")


class EndpointHandler(ModelHandler[ScoreRequest, PredictionResult, EndpointClient]):
    """Subclasses say what to ask for a request (`payload`) and how to score the reply (`score`)."""

    def __init__(self, config: ModelJudgeConfig, endpoint: EndpointConfig, where: str):
        super().__init__()
        self._config, self._endpoint, self._where = config, endpoint, where

    @classmethod
    def build(cls, config: ModelJudgeConfig, endpoint: EndpointConfig, *, where: str) -> EndpointHandler:
        """The handler, once the server answers (checked here, naming the param, rather than in every request)."""
        probe(endpoint, api_key(endpoint, where), where)
        return cls(config, endpoint, where)

    def payload(self, request: ScoreRequest) -> dict:
        """The /chat/completions request body, but its `model`."""
        raise NotImplementedError

    def score(self, reply: dict) -> tuple[float, dict]:
        """(score in [0, 1], detail) from the parsed reply; raises ValueError (BadReply) when it has none."""
        raise NotImplementedError

    def load_model(self) -> EndpointClient:
        return EndpointClient(self._endpoint, api_key(self._endpoint, self._where))

    def run_inference(self, batch: Sequence[ScoreRequest], model: EndpointClient,
                      inference_args: Optional[dict] = None) -> Iterable[PredictionResult]:
        results: list[Optional[JudgeResult]] = [None] * len(batch)
        pending = {}
        for i, request in enumerate(batch):
            if request.unscorable():
                results[i] = request.unscorable()
            else:
                pending[i] = model.submit_chat(self.payload(request))
        for i, future in pending.items():
            results[i] = self._result(future, model.redact)
        return [PredictionResult(req, res, self._endpoint.model) for req, res in zip(batch, results, strict=True)]

    def _result(self, future: Future, redact) -> JudgeResult:
        try:
            score, detail = self.score(future.result())
        except EndpointError as exc:
            return JudgeResult.failed(f"endpoint: {exc}")
        except ValueError as exc:  # BadReply, or a reply whose numbers cannot be scored
            return JudgeResult.failed(redact(f"endpoint: unusable reply: {exc}"))
        return JudgeResult(score, score >= self._config.threshold, detail)

    def batch_elements_kwargs(self):
        size = self._config.max_batch_size
        return {"min_batch_size": size, "max_batch_size": size}

    def share_model_across_processes(self) -> bool:
        return False
