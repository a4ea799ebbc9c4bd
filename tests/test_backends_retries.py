"""The openai backend's failure handling, against a scripted loopback stub server: retries with
backoff, timeouts, the concurrency limit, the API key, and the no-logprobs fallback."""

from __future__ import annotations

import json
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from quillrl.backends import ChatPrompt, SamplingParams
from quillrl.backends.openai_compat import OpenAIBackend, match_choice_token
from quillrl.errors import BackendError


def completion(text: str = "ok", logprobs: dict | None = None) -> dict:
    """A chat completion; the stub turns it into a text completion for /v1/completions."""
    return {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop", "logprobs": logprobs}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


def as_text_completion(payload: dict) -> dict:
    choice = payload["choices"][0]
    return {**payload, "object": "text_completion", "choices": [
        {"index": 0, "text": choice["message"]["content"], "finish_reason": choice["finish_reason"],
         "logprobs": None, **{k: v for k, v in choice.items() if k == "prompt_logprobs"}}]}


class Stub:
    """Answers request i with ``script(i, body) -> (status, payload, headers, delay_s)``;
    records requests and the most requests ever in flight at once."""

    def __init__(self, script):
        self.script, self.requests, self.in_flight, self.max_in_flight = script, [], 0, 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with stub.lock:
                    index = len(stub.requests)
                    stub.requests.append({"body": body, "auth": self.headers.get("Authorization"),
                                          "path": self.path})
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                status, payload, headers, delay = stub.script(index, body)
                if status == 200 and self.path.endswith("/v1/completions"):
                    payload = as_text_completion(payload)
                time.sleep(delay)
                with stub.lock:
                    stub.in_flight -= 1
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for key, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and hung up

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def stub():
    made = []

    def make(script):
        made.append(Stub(script))
        return made[-1]

    yield make
    for s in made:
        s.close()


def backend(url: str, **options) -> OpenAIBackend:
    options = {"backoff": 0.01, "backoff_max": 0.05, "timeout": 5.0, **options}
    return OpenAIBackend(url, "m", **options)


ERROR = {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}}
PARAMS = SamplingParams(max_new_tokens=4)


def test_transient_errors_are_retried_then_succeed(stub):
    # 500, then 429 (with Retry-After: 0), then success
    s = stub(lambda i, body: [(500, ERROR, {}, 0), (429, ERROR, {"Retry-After": "0"}, 0)][i] if i < 2
             else (200, completion("fine"), {}, 0))
    with backend(s.url) as b:
        assert b.generate([ChatPrompt.user("hi")], PARAMS)[0].text == "fine"
        assert b.usage.extra["retries"] == 2 and b.usage.failures == 0 and len(s.requests) == 3


def test_retries_are_bounded(stub):
    s = stub(lambda i, body: (503, ERROR, {}, 0))
    with backend(s.url, attempts=4) as b:
        start = time.perf_counter()
        with pytest.raises(BackendError, match=r"after 4 attempts: HTTP 503"):
            b.generate(["hi"], PARAMS)
        assert len(s.requests) == 4 and b.usage.failures == 1
        assert time.perf_counter() - start < 2  # backoff_max caps each wait


def test_client_errors_are_not_retried(stub):
    s = stub(lambda i, body: (400, ERROR, {}, 0))
    with backend(s.url) as b, pytest.raises(BackendError, match="HTTP 400: boom"):
        b.generate(["hi"], PARAMS)
    assert len(s.requests) == 1


def test_timeouts_are_retried_then_reported(stub):
    s = stub(lambda i, body: (200, completion(), {}, 1.0))
    with backend(s.url, timeout=0.2, attempts=2) as b:
        with pytest.raises(BackendError, match="timed out"):
            b.generate(["hi"], PARAMS)
        assert b.usage.extra["retries"] == 1
    assert len(s.requests) == 2


def test_connection_errors_are_retried(stub):
    s = stub(lambda i, body: (200, completion(), {}, 0))
    url = s.url
    s.close()  # nothing listens on that port any more
    with backend(url, attempts=3) as b, pytest.raises(BackendError, match="after 3 attempts"):
        b.generate(["hi"], PARAMS)


def test_the_concurrency_limit_is_respected(stub):
    s = stub(lambda i, body: (200, completion("echo " + body["prompt"]), {}, 0.05))
    prompts = [f"p{i}" for i in range(12)]
    with backend(s.url, max_concurrency=3) as b:
        gens = b.generate(prompts, PARAMS)
    assert s.max_in_flight == 3 and len(s.requests) == 12  # one request per prompt, 3 at a time
    assert [g.text for g in gens] == ["echo " + p for p in prompts]  # back in prompt order


def test_requests_carry_the_right_fields(stub, monkeypatch):
    s = stub(lambda i, body: (200, completion(), {}, 0))
    monkeypatch.setenv("MY_KEY", "sk-test")
    params = SamplingParams(max_new_tokens=7, temperature=0.5, stop=("</v>",), seed=10, logprobs=2)
    with backend(s.url, api_key_env="MY_KEY", max_tokens_param="max_completion_tokens") as b:
        b.generate([ChatPrompt.user("hi", assistant_prefix="<v>"), "raw"], params)
    chat, raw = sorted((r for r in s.requests), key=lambda r: "prompt" in r["body"])
    assert chat["auth"] == "Bearer sk-test"
    assert chat["body"]["messages"][-1] == {"role": "assistant", "content": "<v>"}
    assert chat["body"]["continue_final_message"] is True and chat["body"]["add_generation_prompt"] is False
    assert chat["body"]["max_completion_tokens"] == 7 and chat["body"]["top_logprobs"] == 2
    assert chat["body"]["stop"] == ["</v>"] and chat["body"]["seed"] == 10
    assert raw["body"]["prompt"] == "raw" and raw["body"]["logprobs"] == 2 and raw["body"]["seed"] == 11


def test_api_key_falls_back_to_empty(stub, monkeypatch):
    s = stub(lambda i, body: (200, completion(), {}, 0))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-sent-unasked")  # only a named variable is read
    with backend(s.url) as b:
        b.generate([ChatPrompt.user("hi")], PARAMS)
    assert s.requests[0]["auth"] == "Bearer EMPTY"


def test_api_key_is_never_sent_over_plain_http_beyond_loopback(monkeypatch):
    from quillrl.backends import make_backend
    from quillrl.errors import ConfigError

    monkeypatch.setenv("MY_KEY", "sk-test")
    with pytest.raises(ConfigError, match="plain http"):
        make_backend("openai:http://10.0.0.7:8000/v1#m;api_key_env=MY_KEY")
    with make_backend("openai:https://10.0.0.7:8000/v1#m;api_key_env=MY_KEY") as b:
        assert b.api_key == "sk-test"
    with make_backend("openai:http://10.0.0.7:8000/v1#m;api_key_env=MY_KEY;allow_insecure_key=true") as b:
        assert b.api_key == "sk-test" and b.model == "m"
    with pytest.raises(ConfigError, match="unset"):
        make_backend("openai:http://127.0.0.1:8000/v1#m;api_key_env=NOT_SET_ANYWHERE")
    with pytest.raises(ConfigError, match="unknown option"):
        make_backend("openai:http://127.0.0.1:8000/v1#m;key=x")


def test_choice_probs_without_logprobs_fall_back_loudly(stub):
    s = stub(lambda i, body: (200, completion("A"), {}, 0))  # the server ignores logprobs
    with backend(s.url) as b:
        with pytest.warns(RuntimeWarning, match="no logprobs"):
            probs = b.choice_probs([ChatPrompt.user("A or B?")], ["A", "B"])
        assert probs.tolist() == [[1.0, 0.0]]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # warned once per backend, counted every time
            b.choice_probs([ChatPrompt.user("A or B?")], ["A", "B"])
        assert b.usage.extra["choice_probs_fallback"] == 2


def test_choice_probs_read_top_logprobs(stub):
    logprobs = {"content": [{"token": "A", "logprob": -0.5, "bytes": None, "top_logprobs": [
        {"token": "A", "logprob": -0.5, "bytes": None}, {"token": " B", "logprob": -1.5, "bytes": None}]}]}
    s = stub(lambda i, body: (200, completion("A", logprobs), {}, 0))
    with backend(s.url) as b:
        probs = b.choice_probs([ChatPrompt.user("?")], ["A", " B", "C"])
    assert probs[0].tolist() == pytest.approx([0.60653, 0.22313, 0.0], abs=1e-5)
    assert s.requests[0]["body"]["max_tokens"] == 1 and s.requests[0]["body"]["top_logprobs"] == 20
    assert b.usage.extra["choice_outside_top_logprobs"] == 1


@pytest.mark.parametrize("choice, tokens, expected", [
    ("A", {"A": 0, "B": 0}, "A"),
    (" Yes", {" Y": 0, " Yes": 0, "Yes": 0}, " Yes"),
    ("A", {"A.": 0}, None),  # a token longer than the choice is another answer
    ("A", {"": 0}, None),
])
def test_match_choice_token(choice, tokens, expected):
    assert match_choice_token(choice, tokens) == expected


def test_backoff_grows_and_honours_retry_after_up_to_the_cap():
    b = OpenAIBackend("http://127.0.0.1:9/v1", "m", backoff=0.1, backoff_max=1.0)
    waits = lambda exc, attempt: b._delay(attempt, exc)  # noqa: E731
    plain = Exception("no response")
    assert 0.05 <= waits(plain, 0) <= 0.1 and 0.4 <= waits(plain, 3) <= 0.8
    assert 0.5 <= waits(plain, 10) <= 1.0  # capped, with jitter
    told = type("E", (), {"response": type("R", (), {"headers": {"retry-after": "0.7"}})()})()
    assert waits(told, 0) == pytest.approx(0.7)
    told.response.headers = {"retry-after": "60"}
    assert waits(told, 0) == pytest.approx(1.0)


@pytest.mark.parametrize("continue_final_message", [True, False])
def test_exact_choice_lookup_follows_the_prefill_setting_and_retries_tokenize(stub, continue_final_message):
    """A choice outside the top list is read through vLLM's /tokenize and prompt_logprobs: the
    /tokenize body renders the chat as the chat request does, and a 503 from it is retried."""
    top = {"content": [{"token": "A", "logprob": -0.1, "bytes": None,
                        "top_logprobs": [{"token": "A", "logprob": -0.1, "bytes": None}]}]}

    def script(i, body):
        if "add_special_tokens" in body:  # /tokenize: the first one fails once
            if sum("add_special_tokens" in r["body"] for r in s.requests) == 1:
                return 503, ERROR, {}, 0
            text = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
            return 200, {"tokens": [1, 2, 3] + ([9] if text.endswith("B") else [])}, {}, 0
        if isinstance(body.get("prompt"), list):  # the exact read: prompt ids + [choice id]
            reply = completion("x")
            reply["choices"][0]["prompt_logprobs"] = [None, None, None, {"9": {"logprob": -3.0}}]
            return 200, reply, {}, 0
        return 200, completion("A", top), {}, 0

    s = stub(script)
    with backend(s.url, continue_final_message=continue_final_message, attempts=3) as b:
        probs = b.choice_probs([ChatPrompt.user("A or B?", assistant_prefix="Verdict: ")], ["A", "B"])
        assert b.usage.extra["retries"] == 1 and b.usage.extra["choice_exact_lookups"] == 1
    assert probs[0].tolist() == pytest.approx([0.904837, 0.049787], abs=1e-6)
    tokenize = [r for r in s.requests if r["path"] == "/tokenize"]
    assert len(tokenize) == 3  # the prompt (failed once, retried) and the prompt with the choice
    chat = [r["body"] for r in s.requests if r["path"] == "/v1/chat/completions"]
    for body in [r["body"] for r in tokenize] + chat:
        assert ("continue_final_message" in str(body)) == continue_final_message


def test_a_server_without_tokenize_leaves_the_choice_at_zero_and_is_not_asked_again(stub):
    top = {"content": [{"token": "A", "logprob": -0.1, "bytes": None,
                        "top_logprobs": [{"token": "A", "logprob": -0.1, "bytes": None}]}]}
    s = stub(lambda i, body: (404, ERROR, {}, 0) if "add_special_tokens" in body
             else (200, completion("A", top), {}, 0))
    prompt = ChatPrompt.user("A or B?", assistant_prefix="Verdict: ")
    with backend(s.url) as b:
        first = b.choice_probs([prompt], ["A", "B"])
        second = b.choice_probs([prompt], ["A", "B"])
        assert b.usage.failures == 0 and "retries" not in b.usage.extra
    assert first[0][1] == second[0][1] == 0.0
    assert [r["path"] for r in s.requests].count("/tokenize") == 1
