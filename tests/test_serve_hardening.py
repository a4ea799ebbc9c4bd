"""quillrl serve under hostile and concurrent clients (real uvicorn on loopback, a tiny model)."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from quillrl.backends.local import LocalBackend
from quillrl.backends.server import OpenAIServer
from quillrl.httpserve.http import HTTPSection

CHAT = {"model": "tiny", "max_tokens": 2, "temperature": 0, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def local(tiny_model_dir) -> LocalBackend:
    return LocalBackend(tiny_model_dir, batch_size=8, device="cpu")


class RecordingBackend:
    """The tiny model, recording each generate call's prompts (to see batches and their order)."""

    def __init__(self, inner, fail: bool = False, gate: threading.Event | None = None):
        self.inner, self.fail, self.calls, self.gate = inner, fail, [], gate
        self.model_name = "tiny"

    def generate(self, prompts, params):
        self.calls.append(list(prompts))
        if self.gate is not None:
            assert self.gate.wait(120)  # the first batch holds the model until the test opens the gate
        if self.fail:
            raise RuntimeError("secret backend detail")
        return self.inner.generate(prompts, params)


def raw(port: int, data: bytes, timeout: float = 60) -> str:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(data)
        sock.settimeout(timeout)
        return sock.recv(4096).decode(errors="replace")


def test_fifty_concurrent_requests_all_answered_in_shared_batches(local):
    gate = threading.Event()
    backend = RecordingBackend(local, gate=gate)
    with OpenAIServer(backend, "127.0.0.1", 0, model_name="tiny", max_batch=16).start() as server:
        with ThreadPoolExecutor(50) as pool:
            futures = [pool.submit(lambda: httpx.post(server.url + "/chat/completions", json=CHAT,
                                                      timeout=300).status_code) for _ in range(50)]
            while not backend.calls or len(server.scheduler._jobs) < 50 - len(backend.calls[0]):
                gate.wait(0.01)  # the first batch holds the model until every request is queued
            gate.set()
            codes = [f.result() for f in futures]
    assert codes == [200] * 50
    assert sum(map(len, backend.calls)) == 50
    assert len(backend.calls) == 1 + -(-(50 - len(backend.calls[0])) // 16)  # full batches of 16


def test_a_small_request_is_not_starved_behind_a_large_one(local):
    gate = threading.Event()
    backend = RecordingBackend(local, gate=gate)
    big = {"model": "tiny", "prompt": [f"story {i}" for i in range(40)], "max_tokens": 2, "temperature": 0}
    small = {"model": "tiny", "prompt": "the small one", "max_tokens": 2, "temperature": 0}
    done: list[str] = []
    with OpenAIServer(backend, "127.0.0.1", 0, model_name="tiny", max_batch=4).start() as server:
        def send(name, body):
            assert httpx.post(server.url + "/completions", json=body, timeout=300).status_code == 200
            done.append(name)

        threads = [threading.Thread(target=send, args=("big", big)), threading.Thread(target=send, args=("small", small))]
        threads[0].start()
        while not backend.calls:  # the big request's first batch holds the model ...
            gate.wait(0.01)
        threads[1].start()
        while len(server.scheduler._jobs) < 2:  # ... while the small one queues behind it
            gate.wait(0.01)
        gate.set()
        for t in threads:
            t.join()
    assert done == ["small", "big"]
    assert "the small one" in backend.calls[1] and sum(map(len, backend.calls)) == 41  # the very next batch


@pytest.mark.parametrize("length", [b"abc", b"1e3", b"-100", b"-1"])
def test_malformed_content_length_gets_an_answer(local, length):
    with OpenAIServer(local, "127.0.0.1", 0, model_name="tiny").start() as server:
        reply = raw(server._thread.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: "
                    + length + b"\r\n\r\n{}")
    assert reply.startswith("HTTP/1.1 400")


def test_body_shorter_than_its_content_length_times_out(local):
    limits = HTTPSection(body_timeout_s=1.0)
    with OpenAIServer(local, "127.0.0.1", 0, model_name="tiny", limits=limits).start() as server:
        reply = raw(server._thread.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{")
    assert reply.startswith("HTTP/1.1 408")


def test_caps_token_and_no_exception_text(local):
    limits = HTTPSection(max_body_bytes=4096)
    with OpenAIServer(RecordingBackend(local, fail=True), "127.0.0.1", 0, model_name="tiny", max_prompts=8,
                      max_tokens=16, limits=limits, token="tok").start() as server:
        url, auth = server.url, {"Authorization": "Bearer tok"}
        assert httpx.post(url + "/chat/completions", json=CHAT, timeout=30).status_code == 401
        many = httpx.post(url + "/completions", json={"prompt": ["a"] * 3, "n": 3}, headers=auth, timeout=30)
        assert many.status_code == 400 and many.json()["error"]["param"] == "prompt"
        long = httpx.post(url + "/chat/completions", json={**CHAT, "max_tokens": 17}, headers=auth, timeout=30)
        assert long.status_code == 400 and long.json()["error"]["param"] == "max_tokens"
        huge = httpx.post(url + "/completions", json={"prompt": "x" * 5000}, headers=auth, timeout=30)
        assert huge.status_code == 413
        crash = httpx.post(url + "/chat/completions", json=CHAT, headers=auth, timeout=30)
        assert crash.status_code == 500 and "secret" not in crash.text


def test_half_open_connections_make_no_threads(local):
    with OpenAIServer(local, "127.0.0.1", 0, model_name="tiny").start() as server:
        before = threading.active_count()
        socks = [socket.create_connection(("127.0.0.1", server._thread.port)) for _ in range(100)]
        for s in socks:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        assert httpx.post(server.url + "/completions", json={"prompt": "x", "max_tokens": 1},
                          timeout=120).status_code == 200
        assert threading.active_count() - before < 10
        for s in socks:
            s.close()
