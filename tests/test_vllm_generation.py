"""The vLLM backend's adapter, against a loopback stand-in for the vLLM OpenAI-compatible server that
Beam's VLLMChatModelHandler starts (vLLM itself needs a GPU and is not installed here)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from transforms.generation.hf_generation import PROMPT_TOO_LONG, GenerationRequest, SamplingParams
from transforms.generation.vllm_generation import VLLMGenerationHandler


class FakeVLLM(BaseHTTPRequestHandler):
    requests: list = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeVLLM.requests.append((self.path, body))
        prompt = body["messages"][-1]["content"]
        if "too long" in prompt:
            self._reply(400, {"object": "error", "message": "This model's maximum context length is 8192 tokens.",
                              "type": "BadRequestError", "code": 400})
            return
        finish = "length" if "long answer" in prompt else "stop"
        self._reply(200, {
            "id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": f"echo {prompt} seed {body['seed']}"}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        })

    def _reply(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Server:
    def __init__(self, port):
        self.port = port

    def get_server_port(self):
        return self.port


@pytest.fixture
def server():
    FakeVLLM.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeVLLM)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield Server(httpd.server_address[1])
    httpd.shutdown()


def test_each_request_is_sent_with_its_own_seed_and_sampling(server):
    handler = VLLMGenerationHandler("models/base", SamplingParams(0.8, top_p=0.9, top_k=0, max_new_tokens=32))
    batch = [GenerationRequest(key=f"k{i}", messages=(("user", f"q{i}"),), seed=100 + i) for i in range(3)]
    results = handler.run_inference(batch, server)
    assert [r.inference.text for r in results] == [f"echo q{i} seed {100 + i}" for i in range(3)]
    assert all(r.inference.finish_reason == "stop" and r.inference.completion_tokens == 7 for r in results)
    sent = sorted((body for _, body in FakeVLLM.requests), key=lambda b: b["seed"])
    assert {path for path, _ in FakeVLLM.requests} == {"/v1/chat/completions"}
    assert [b["seed"] for b in sent] == [100, 101, 102]
    assert all(b["max_tokens"] == 32 and b["temperature"] == 0.8 and b["top_p"] == 0.9 and b["top_k"] == -1
               for b in sent)


def test_length_and_context_errors_map_to_finish_reasons(server):
    handler = VLLMGenerationHandler("models/base", SamplingParams(0.0, max_new_tokens=8))
    batch = [GenerationRequest(key="a", messages=(("user", "a long answer please"),), seed=1),
             GenerationRequest(key="b", messages=(("user", "this prompt is too long"),), seed=2)]
    long_answer, too_long = (r.inference for r in handler.run_inference(batch, server))
    assert long_answer.finish_reason == "length"
    assert too_long.finish_reason == PROMPT_TOO_LONG and too_long.text == ""
