"""`quillrl serve` drops abandoned work (issue 23 §3), and local generation never runs past the
model's context (§7). Real uvicorn on loopback, a tiny random model."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import pytest

from quillrl.backends.base import ChatPrompt, SamplingParams
from quillrl.backends.local import LocalBackend
from quillrl.backends.server import OpenAIServer
from quillrl.errors import ConfigError


@pytest.fixture
def endless(tiny_model_dir) -> LocalBackend:
    """The tiny model with an end-of-sequence token it never writes: every row runs to its limit."""
    backend = LocalBackend(tiny_model_dir, batch_size=32, device="cpu")
    backend._eos_ids = {383}
    return backend


def test_a_request_whose_client_left_is_cancelled_and_the_next_one_is_answered(endless):
    big = {"model": "tiny", "n": 64, "max_tokens": 2000, "temperature": 0,
           "messages": [{"role": "user", "content": "a long story"}]}
    small = {"model": "tiny", "max_tokens": 2, "temperature": 0.5,
             "messages": [{"role": "user", "content": "hi"}]}
    with OpenAIServer(endless, "127.0.0.1", 0, model_name="tiny", max_request_tokens=10**7).start() as server:
        with pytest.raises(httpx.TimeoutException):  # the client gives up and goes away
            httpx.post(server.url + "/chat/completions", json=big, timeout=1.5)
        start = time.monotonic()
        answer = httpx.post(server.url + "/chat/completions", json=small, timeout=120)
        waited = time.monotonic() - start
        assert answer.status_code == 200
        # 64 rows × 2000 tokens take about a minute on a CPU; the abandoned ones stop at once
        assert waited < 10, f"the small request waited {waited:.1f} s behind abandoned work"
        assert server.scheduler.cancelled_prompts == 64
        assert not server.scheduler._jobs


def test_a_request_over_the_token_budget_is_refused_naming_it(tiny_model_dir):
    backend = LocalBackend(tiny_model_dir, device="cpu")
    with OpenAIServer(backend, "127.0.0.1", 0, model_name="tiny", max_request_tokens=1000).start() as server:
        body = {"model": "tiny", "n": 8, "max_tokens": 200, "messages": [{"role": "user", "content": "x"}]}
        r = httpx.post(server.url + "/chat/completions", json=body, timeout=60)
        assert r.status_code == 400 and "1600 tokens" in r.json()["error"]["message"]
        assert "limit of 1000" in r.json()["error"]["message"]
        r = httpx.post(server.url + "/completions", timeout=60, json={
            "model": "tiny", "prompt": ["a", "b", "c"], "max_tokens": 400})
        assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"


def test_ctrl_c_stops_serve_within_seconds_while_a_client_waits(tiny_model_dir):
    launch = "import sys; from quillrl.cli import main; sys.argv[0] = 'quillrl'; main()"
    proc = subprocess.Popen([sys.executable, "-c", launch, "serve", "--model", str(tiny_model_dir),
                             "--port", "0", "--served-model-name", "tiny",
                             "--max-request-tokens", "10000000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = json.loads(proc.stdout.readline())["url"]
        big = {"model": "tiny", "n": 256, "max_tokens": 2000, "temperature": 1.0,
               "messages": [{"role": "user", "content": "hi"}]}
        client = subprocess.Popen([sys.executable, "-c", (
            "import httpx, sys; httpx.post(sys.argv[1], json=" + repr(big) + ", timeout=600)"),
            url + "/chat/completions"], stderr=subprocess.DEVNULL)
        time.sleep(3)  # the request is being generated, its client still waiting
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        assert time.monotonic() - start < 15
    finally:
        proc.kill()
        client.kill()


def test_max_new_tokens_is_clamped_to_the_context_and_a_too_long_prompt_is_refused(endless, caplog):
    endless.model.config.max_position_embeddings = 64
    prompt = ChatPrompt(({"role": "user", "content": "hi"},))
    with caplog.at_level("WARNING"):
        gen = endless.generate([prompt], SamplingParams(max_new_tokens=300, temperature=0))[0]
    assert gen.finish_reason == "length" and gen.completion_tokens == 64 - gen.prompt_tokens
    assert "generating at most" in caplog.text
    long = ChatPrompt(({"role": "user", "content": "word " * 200},))
    with pytest.raises(ConfigError, match="does not fit the model's context of 64 tokens"):
        endless.generate([long], SamplingParams(max_new_tokens=4, temperature=0))
