"""The LLM judge on an OpenAI-compatible server, against a loopback server each test scripts: the score
is the local judge's expected rating over the reply's top log-probabilities, and every failure (bad
reply, timeout, 5xx, 4xx) is a counted judge_error for its candidate, never a failed batch."""

import json
import logging
import math
import pickle
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines import config as config_module
from pipelines.stages import judge
from schemas.records import CANDIDATE
from tests.stage_fixtures import chdir, prompt, write_params, write_prompt_sets
from tests.test_judge_stage import CANDIDATES, TRAIN
from transforms.io.model_io import model_sha256
from transforms.io.parquet_io import read_rows, shard_name
from transforms.judges import endpoint_judge, llm_judge
from transforms.judges.contract import judgment_error
from transforms.judges.endpoint_judge import EndpointConfig
from transforms.judges.llm_judge import LlmJudgeConfig, rubric_messages
from transforms.judges.scoring_models import ScoreRequest
from transforms.settings import ConfigError

SERVED = "judge-7b"
MODELS = {"object": "list", "data": [{"id": SERVED, "object": "model"}]}


def reply(*alternatives: tuple[str, float]) -> dict:
    """A /chat/completions reply whose one token has these (token, probability) alternatives."""
    top = [{"token": token, "logprob": math.log(p), "bytes": list(token.encode())} for token, p in alternatives]
    return {"id": "x", "object": "chat.completion", "model": SERVED,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": alternatives[0][0]},
                         "finish_reason": "length",
                         "logprobs": {"content": [{**top[0], "top_logprobs": top}]}}]}


GOOD = reply(("4", 0.5), ("5", 0.25), ("3", 0.15), (" 4", 0.05), ("The", 0.05))


class Server:
    """A loopback server: `respond(n, path, body)` gives the n-th request's (status, JSON or bytes, delay_s).
    GET /v1/models lists SERVED unless `respond` answers it."""

    def __init__(self, respond):
        self.respond, self.seen, self.in_flight, self.max_in_flight = respond, [], 0, 0
        self.lock, self.stop = threading.Lock(), threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.answer()

            def do_POST(self):
                self.answer()

            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                with server.lock:
                    n = len(server.seen)
                    server.seen.append({"method": self.command, "path": self.path, "body": body,
                                        "authorization": self.headers.get("Authorization")})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    status, payload, delay = server.respond(n, self.path, body, self.headers)
                    server.stop.wait(delay)
                    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                    self.send_response(status)
                    if 300 <= status < 400:
                        self.send_header("Location", payload["location"])
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (a timeout test)
                    pass
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def chats(self) -> list[dict]:
        return [r for r in self.seen if r["path"] == "/v1/chat/completions"]

    def close(self):
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def answering(chat, models=(200, MODELS, 0)):
    """A `respond` that lists the models, and answers chats with `chat(n-th chat, body)`."""
    count = iter(range(10**6))

    def respond(n, path, body, headers):
        return models if path == "/v1/models" else chat(next(count), body)

    return respond


@pytest.fixture
def serve(monkeypatch):
    monkeypatch.setattr(endpoint_judge, "BACKOFF_S", 0.01)
    servers = []

    def start(respond) -> Server:
        servers.append(Server(respond))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def settings(url: str, **endpoint) -> LlmJudgeConfig:
    fields = {"model": SERVED, "timeout_s": 0.5, "max_retries": 2, "concurrency": 4, **endpoint}
    return LlmJudgeConfig(endpoint=EndpointConfig(base_url=url, **fields))


def judged(config: LlmJudgeConfig, *responses: str) -> list:
    """JudgeResults of the judge built as the stage builds it, one request per response."""
    handler = llm_judge.build(config, load_policy=None, where="judge.llm_judge")
    requests = [ScoreRequest(f"c{i}", "Write about owls.", text) for i, text in enumerate(responses)]
    return [r.inference for r in handler.run_inference(requests, handler.load_model())]


def test_a_good_reply_scores_the_expected_rating_over_the_digits_in_the_top_list(serve):
    server = serve(answering(lambda n, body: (200, GOOD, 0)))
    (result,) = judged(settings(server.url, top_logprobs=7), "Owls hunt at night.")
    # digits found: 3: 0.15, 4: 0.5 + 0.05 (" 4" counts as 4), 5: 0.25; 1 and 2 have none; renormalised over 0.95
    rating = (3 * 0.15 + 4 * 0.55 + 5 * 0.25) / 0.95
    assert result.error == ""
    assert result.score == pytest.approx((rating - 1) / 4)  # 0.7763
    assert result.passed
    assert result.detail["rating_probabilities"] == pytest.approx([0, 0, 0.15 / 0.95, 0.55 / 0.95, 0.25 / 0.95],
                                                                   abs=1e-4)
    (chat,) = server.chats()
    assert chat["body"] == {"model": SERVED, "messages": rubric_messages("Write about owls.", "Owls hunt at night."),
                            "max_tokens": 1, "temperature": 0, "logprobs": True, "top_logprobs": 7}
    assert chat["authorization"] is None  # no api_key_env: no key


NO_LOGPROBS = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}, "logprobs": None}]}


@pytest.mark.parametrize("answer, error", [
    (b"<html>502 from a proxy</html>", "unusable reply: reply is not JSON: '<html>502 from a proxy</html>'"),
    ([1, 2], "unusable reply: reply is a JSON list, not an object"),
    ({"choices": []}, "unusable reply: reply has no choices[0]"),
    (NO_LOGPROBS, "unusable reply: reply has no choices[0].logprobs.content"),
    (reply(("The", 0.6), ("I", 0.3)), "unusable reply: no rating digit 1-5 among the top 2 tokens ('The', 'I')"),
    (reply(("0", 0.6), ("6", 0.3)), "no rating digit 1-5"),
    ({"choices": [{"logprobs": {"content": [{"top_logprobs": [{"token": "4"}]}]}}]}, "is not a {token, logprob} pair"),
    ({"choices": [{"logprobs": {"content": [{"top_logprobs": {"4": -0.1}}]}}]}, "top_logprobs is a dict, not a list"),
])
def test_an_unusable_reply_is_a_judge_error_and_is_not_retried(serve, answer, error):
    server = serve(answering(lambda n, body: (200, answer, 0)))
    (result,) = judged(settings(server.url), "Owls hunt at night.")
    assert not result.passed and result.score == 0.0
    assert result.error.startswith("endpoint: ") and error in result.error
    assert len(server.chats()) == 1


def test_a_server_slower_than_timeout_s_is_retried_then_counted(serve):
    server = serve(answering(lambda n, body: (200, GOOD, 2.0)))
    (result,) = judged(settings(server.url, timeout_s=0.1, max_retries=1), "Owls hunt at night.")
    assert result.error == "endpoint: no reply within timeout_s 0.1 (after 2 attempts)"
    assert len(server.chats()) == 2


@pytest.mark.parametrize("status", [500, 503, 429])
def test_5xx_and_429_are_retried_max_retries_times_then_counted(serve, status):
    server = serve(answering(lambda n, body: (status, {"error": "busy"}, 0)))
    (result,) = judged(settings(server.url, max_retries=2), "Owls hunt at night.")
    assert result.error.startswith(f"endpoint: HTTP {status} ") and result.error.endswith("(after 3 attempts)")
    assert '{"error": "busy"}' in result.error
    assert len(server.chats()) == 3


def test_a_500_then_a_good_reply_is_retried_and_scored(serve):
    server = serve(answering(lambda n, body: (500, {}, 0) if n == 0 else (200, GOOD, 0)))
    (result,) = judged(settings(server.url), "Owls hunt at night.")
    assert result.error == "" and result.score == pytest.approx(0.7763, abs=1e-4)
    assert len(server.chats()) == 2


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_4xx_are_not_retried(serve, status):
    server = serve(answering(lambda n, body: (status, {"error": {"message": "context length exceeded"}}, 0)))
    (result,) = judged(settings(server.url, max_retries=3), "Owls hunt at night.")
    assert result.error.startswith(f"endpoint: HTTP {status} ") and "context length exceeded" in result.error
    assert "attempts" not in result.error
    assert len(server.chats()) == 1


def test_empty_answers_are_errors_without_a_request(serve):
    server = serve(answering(lambda n, body: (200, GOOD, 0)))
    empty, scored = judged(settings(server.url), "  \n", "Owls hunt at night.")
    assert empty.error == "empty answer: nothing to judge"
    assert scored.error == ""
    assert len(server.chats()) == 1


def test_no_more_than_concurrency_requests_are_in_flight(serve):
    server = serve(answering(lambda n, body: (200, GOOD, 0.2)))
    results = judged(settings(server.url, concurrency=3), *[f"Answer {i}." for i in range(12)])
    assert all(r.error == "" for r in results)
    assert len(server.chats()) == 12
    assert 2 <= server.max_in_flight <= 3  # concurrent, never above the limit (how many overlap depends on timing)


def test_the_api_key_is_sent_and_appears_in_no_result_log_or_pickle(serve, monkeypatch, caplog, capfd):
    key = "sk-test-0123456789abcdef"
    monkeypatch.setenv("SELFSIFT_TEST_KEY", key)

    def chat(n, body):  # servers that echo what they were sent: in an error, a broken reply, a retried 5xx
        text = body["messages"][0]["content"]
        echo = f"bad key? got Bearer {key}".encode()
        if "refused" in text:
            return 400, echo, 0
        if "garbled" in text:
            return 200, echo, 0
        return (503, echo, 0) if "busy" in text else (200, GOOD, 0)

    server = serve(answering(chat))
    caplog.set_level(logging.DEBUG, logger="selfsift.judge")  # whatever level an earlier CLI run set
    config = settings(server.url, api_key_env="SELFSIFT_TEST_KEY", max_retries=1)
    handler = llm_judge.build(config, load_policy=None, where="judge.llm_judge")
    client = handler.load_model()
    requests = [ScoreRequest(f"c{i}", "Write.", text) for i, text in enumerate(["fine", "refused", "garbled", "busy"])]
    results = [r.inference for r in handler.run_inference(requests, client)]
    assert [r.error == "" for r in results] == [True, False, False, False]
    assert {r["authorization"] for r in server.seen} == {f"Bearer {key}"}  # the probe's GET and every POST
    assert "[api key]" in results[1].error and "[api key]" in results[2].error
    recorded = json.dumps([r.record(q.key, "llm_judge") for q, r in zip(requests, results)])
    out, err = capfd.readouterr()
    assert "retry 1 of 1" in caplog.text  # the retried 503 was logged, redacted
    for text in (recorded, caplog.text, out, err, repr(client), repr(config)):
        assert key not in text
    assert key.encode() not in pickle.dumps(handler)  # what Beam ships to workers holds the variable's name only


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_an_unreachable_endpoint_fails_the_build_naming_the_param_and_url():
    url = closed_port_url()
    with pytest.raises(ConfigError, match=rf"judge\.llm_judge\.endpoint\.base_url: cannot reach the judge server at "
                                          rf"{url}/models \(connection failed: .*refused"):
        llm_judge.build(settings(url), load_policy=None, where="judge.llm_judge")


@pytest.mark.parametrize("models, endpoint, error", [
    ((401, {"error": "no key"}, 0), {}, r"judge\.llm_judge\.endpoint\.api_key_env: .*/v1/models refused the request "
                                        r"\(HTTP 401"),
    ((200, MODELS, 0), {"model": "judge-70b"}, r"judge\.llm_judge\.endpoint\.model: 'judge-70b' is not served at "
                                               r".*/v1/models \(it serves: judge-7b\)"),
    ((200, b"<html>", 0), {}, r"judge\.llm_judge\.endpoint\.base_url: .*/v1/models is not an OpenAI-compatible server"),
    ((500, {}, 0), {}, r"judge\.llm_judge\.endpoint\.base_url: cannot reach the judge server .*HTTP 500"),
    ((200, MODELS, 0), {"api_key_env": "SELFSIFT_UNSET_KEY"},
     r"judge\.llm_judge\.endpoint\.api_key_env: the environment variable SELFSIFT_UNSET_KEY is not set"),
])
def test_a_server_that_cannot_judge_fails_the_build_naming_the_param(serve, monkeypatch, models, endpoint, error):
    monkeypatch.delenv("SELFSIFT_UNSET_KEY", raising=False)
    server = serve(answering(lambda n, body: (200, GOOD, 0), models=models))
    with pytest.raises(ConfigError, match=error):
        llm_judge.build(settings(server.url, **endpoint), load_policy=None, where="judge.llm_judge")
    assert server.chats() == []


@pytest.mark.parametrize("endpoint, key", [
    ({"base_url": "localhost:8000/v1"}, "base_url"),
    ({"base_url": "ftp://host/v1"}, "base_url"),
    ({"base_url": "http://user:secret@host/v1"}, "base_url"),
    ({"base_url": "http://host:99999/v1"}, "base_url"),
    ({"base_url": "http://host/v1?key=1"}, "base_url"),
    ({"base_url": "http://host/v1", "model": ""}, "model"),
    ({"timeout_s": 0.0}, "timeout_s"),
    ({"max_retries": 11}, "max_retries"),
    ({"max_retries": -1}, "max_retries"),
    ({"concurrency": 0}, "concurrency"),
    ({"api_key_env": "sk-0123"}, "api_key_env"),
    ({"top_logprobs": 21}, "top_logprobs"),
    ({"top_logprobs": 0}, "top_logprobs"),
])
def test_bad_endpoint_settings_are_refused_naming_the_key(endpoint, key):
    with pytest.raises(ConfigError, match=rf"^judge\.llm_judge\.endpoint\.{key}") as refused:
        LlmJudgeConfig(endpoint=EndpointConfig(**{"model": SERVED, **endpoint})).validate("judge.llm_judge")
    assert "sk-0123" not in str(refused.value)  # a key pasted in place of its variable's name is not echoed


def test_params_yaml_reads_the_endpoint_block_and_names_a_bad_url(tmp_path):
    endpoint = {"base_url": "http://gpu-box:8000/v1", "model": SERVED, "timeout_s": 5}
    write_params(tmp_path, "unused", judge={"llm_judge": {"endpoint": endpoint}})
    assert config_module.load(tmp_path / "params.yaml").judge.llm_judge.endpoint.timeout_s == 5.0
    write_params(tmp_path, "unused", judge={"llm_judge": {"endpoint": {**endpoint, "base_url": "gpu-box:8000"}}})
    with pytest.raises(ConfigError, match=r"params\.yaml\.judge\.llm_judge\.endpoint\.base_url: 'gpu-box:8000'"):
        config_module.load(tmp_path / "params.yaml")


def test_ratings_missing_from_the_top_list_have_no_probability_and_none_at_all_is_refused():
    logprobs = llm_judge.rating_logprobs([{"token": "5", "logprob": math.log(0.6)}, {"token": "x", "logprob": -1.0}])
    assert logprobs[:4] == [-math.inf] * 4 and logprobs[4] == pytest.approx(math.log(0.6))
    assert llm_judge.expected_rating(logprobs) == (1.0, [0.0, 0.0, 0.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="at least one finite"):
        llm_judge.expected_rating([-math.inf] * 5)


def test_an_endpoint_judge_is_identified_by_its_server_and_served_name_a_local_one_by_its_weights(tiny_model_dir):
    assert settings("http://gpu-box:8000/v1/").identity() == {"base_url": "http://gpu-box:8000/v1", "model": SERVED}
    local = LlmJudgeConfig(model=str(tiny_model_dir))
    assert local.identity() == {"model": str(tiny_model_dir), "weights_sha256": model_sha256(tiny_model_dir)}


def stage_reply(n, body):
    """The judge server of the stage run, by the answer in the rubric."""
    text = body["messages"][0]["content"]
    if "silent wings" in text:
        return 500, {"error": "overloaded"}, 0
    if "Owls, owls" in text:
        return 200, reply(("Hmm", 0.9)), 0
    if "echolocate" in text:
        return 400, {"error": {"message": "maximum context length exceeded"}}, 0
    if "Bats are mammals" in text:
        return 200, GOOD, 2.0
    return 200, GOOD, 0


def test_a_judge_stage_with_an_endpoint_judge_counts_every_failure_and_writes_its_calibration(serve, tmp_path):
    server = serve(answering(stage_reply))
    endpoint = {"base_url": server.url, "model": SERVED, "timeout_s": 0.2, "max_retries": 1, "concurrency": 2}
    write_params(tmp_path, "unused", judge={"num_shards": 2, "heuristics": {"min_words": 1},
                                            "llm_judge": {"enabled": True, "endpoint": endpoint}},
                 curate={"num_shards": 1})
    write_prompt_sets(tmp_path, TRAIN, [prompt("e1", "Write about frogs.", "eval")],
                      [prompt("o1", "Write about caves.", "eval_ood")])
    (tmp_path / "data/candidates/iter-001").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(CANDIDATES, schema=CANDIDATE),
                   tmp_path / "data/candidates/iter-001" / shard_name(0, 1))
    config = config_module.load(tmp_path / "params.yaml")
    with chdir(tmp_path):
        judge.main(config, "iter-001", [])
        errors = {j["candidate_id"]: judgment_error(j) for j in read_rows("data/judgments/iter-001")
                  if j["judge"] == "llm_judge"}
        manifest = json.loads(open("data/judgments/iter-001/manifest.json").read())
        report = json.loads(open("reports/judges/iter-001.json").read())
    assert errors == {
        "c1": "",
        "c2": "endpoint: HTTP 500 Internal Server Error: {\"error\": \"overloaded\"} (after 2 attempts)",
        "c3": "empty answer: nothing to judge",
        "c4": "endpoint: HTTP 400 Bad Request: {\"error\": {\"message\": \"maximum context length exceeded\"}}",
        "c5": "endpoint: no reply within timeout_s 0.2 (after 2 attempts)",
        "c6": "endpoint: unusable reply: no rating digit 1-5 among the top 1 tokens ('Hmm')",
    }
    assert len(server.chats()) == 1 + 2 + 1 + 2 + 1  # c1, c2 retried, c4, c5 retried, c6; none for the empty c3
    assert manifest["judge_models"] == {"llm_judge": {"base_url": server.url, "model": SERVED}}
    assert report["judges"]["llm_judge"]["excluded_unscored"] == 5


def test_the_api_key_does_not_follow_a_redirect(serve, monkeypatch):
    key = "sk-test-redirected"
    monkeypatch.setenv("SELFSIFT_TEST_KEY", key)
    elsewhere = serve(answering(lambda n, body: (200, GOOD, 0)))
    server = serve(lambda n, path, body, headers: (302, {"location": f"{elsewhere.url}/models"}, 0))
    llm_judge.build(settings(server.url, api_key_env="SELFSIFT_TEST_KEY"), load_policy=None, where="judge.llm_judge")
    assert server.seen[0]["authorization"] == f"Bearer {key}"
    assert [r["authorization"] for r in elsewhere.seen] == [None]  # followed, without the key
