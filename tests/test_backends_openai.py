"""The openai backend against a real ``quillrl serve`` server on loopback (tiny model), and the
server's own OpenAI-shaped answers and errors."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from quillrl.backends import ChatPrompt, SamplingParams, make_backend
from quillrl.backends.local import LocalBackend
from quillrl.backends.openai_compat import OpenAIBackend
from quillrl.backends.server import OpenAIServer

PROMPTS = [
    ChatPrompt.user("Write a haiku about autumn leaves."),
    ChatPrompt.user("Story A or story B?", assistant_prefix="<verdict>", system="You judge."),
    "Once upon a time",
    "The knight walked home;",
]


@pytest.fixture(scope="module")
def local(tiny_model_dir) -> LocalBackend:
    return LocalBackend(tiny_model_dir, batch_size=4, device="cpu")


@pytest.fixture(scope="module")
def server(local):
    with OpenAIServer(local, "127.0.0.1", 0, model_name="tiny").start() as srv:
        yield srv


@pytest.fixture()
def remote(server):
    backend = make_backend(f"openai:{server.url}#tiny", max_concurrency=4, timeout=30)
    yield backend
    backend.close()


def post(server, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(server.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_generation_through_the_server_equals_local(local, remote):
    params = SamplingParams(max_new_tokens=6, logprobs=3, stop=("zzz",))
    # covers chat, chat with an assistant prefix (continue_final_message) and completions
    for here, there in zip(local.generate(PROMPTS, params), remote.generate(PROMPTS, params)):
        assert there.text == here.text and there.finish_reason == here.finish_reason
        assert there.tokens == here.tokens
        np.testing.assert_allclose(there.token_logprobs, here.token_logprobs, atol=1e-5)
        assert list(there.top_logprobs[0]) == list(here.top_logprobs[0])
        assert (there.prompt_tokens, there.completion_tokens) == (here.prompt_tokens, here.completion_tokens)
    assert remote.usage.calls == len(PROMPTS) and remote.usage.completion_tokens == 6 * len(PROMPTS)


def test_choice_probs_through_the_server_equal_local(local, remote):
    # choices the model ranks in its top 20 must match; the rest are below the list: 0.0
    top = local.generate(PROMPTS, SamplingParams(max_new_tokens=1, logprobs=20))
    choices = ["A", "B"] + [t for t in list(top[1].top_logprobs[0])[:3] if t != "\ufffd"]
    here, there = local.choice_probs(PROMPTS, choices), remote.choice_probs(PROMPTS, choices)
    for r, gen in enumerate(top):
        for c, choice in enumerate(choices):
            listed = [t for t in gen.top_logprobs[0] if t and choice.startswith(t)]
            if listed and max(listed, key=len) == choice:
                assert there[r, c] == pytest.approx(here[r, c], rel=1e-4)
            elif not listed:
                assert there[r, c] == 0.0
    assert (there > 0).sum() >= 3
    assert remote.usage.extra.get("choice_outside_top_logprobs", 0) == int((there == 0).sum())


def test_sampling_with_a_seed_is_reproducible_over_http(remote):
    params = SamplingParams(max_new_tokens=5, temperature=1.0, seed=3)
    a = [g.text for g in remote.generate(["Once upon a time"] * 3, params)]
    assert a == [g.text for g in remote.generate(["Once upon a time"] * 3, params)]
    assert len(set(a)) > 1  # seed + index: a group of identical prompts is not one sample


def test_async_callers_and_callers_inside_a_running_loop(remote):
    params = SamplingParams(max_new_tokens=2)

    async def main():
        awaited = await remote.agenerate(["Once upon a time"], params)
        blocking = remote.generate(["Once upon a time"], params)  # sync, from inside a loop
        probs = await remote.achoice_probs(["Once upon a time"], ["A"])
        return awaited, blocking, probs

    awaited, blocking, probs = asyncio.run(main())
    assert awaited[0].text == blocking[0].text and probs.shape == (1, 1)


def test_model_is_discovered_when_the_spec_names_none(server):
    with OpenAIBackend(server.url) as backend:
        assert backend.generate(["Once"], SamplingParams(max_new_tokens=1))[0].completion_tokens == 1
        assert backend.model == "tiny"


def test_chat_endpoint_shapes(server, local):
    status, body = post(server, "/chat/completions", {
        "model": "tiny", "n": 3, "temperature": 1.0, "seed": 1, "max_completion_tokens": 4,
        "logprobs": True, "top_logprobs": 2,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
    assert status == 200 and body["object"] == "chat.completion" and len(body["choices"]) == 3
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "length"
    entry = choice["logprobs"]["content"][0]
    assert {"token", "logprob", "bytes", "top_logprobs"} <= set(entry)
    assert len(entry["top_logprobs"]) <= 2
    assert body["usage"]["completion_tokens"] == 12  # n samples of 4 tokens
    alone = local.generate([ChatPrompt.user("hi")], SamplingParams(max_new_tokens=1))[0]
    assert body["usage"]["prompt_tokens"] == alone.prompt_tokens  # the prompt counts once


def test_completions_endpoint_shapes(server):
    status, body = post(server, "/completions", {
        "model": "tiny", "prompt": ["Once", "The knight"], "max_tokens": 3, "temperature": 0,
        "logprobs": 2})
    assert status == 200 and body["object"] == "text_completion" and len(body["choices"]) == 2
    lp = body["choices"][1]["logprobs"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == 3
    assert lp["text_offset"][0] == 0
    status, body = post(server, "/completions", {"model": "tiny", "prompt": "Once", "temperature": 0})
    assert body["usage"]["completion_tokens"] == 16  # OpenAI's default max_tokens


USER = [{"role": "user", "content": "x"}]


@pytest.mark.parametrize("path, body, status, fragment", [
    ("/chat/completions", {"model": "other", "messages": USER}, 404, "does not exist"),
    ("/chat/completions", {"messages": []}, 400, "messages"),
    ("/chat/completions", {"messages": USER, "stream": True}, 400, "stream"),
    ("/chat/completions", {"messages": USER, "continue_final_message": True}, 400, "assistant"),
    ("/chat/completions", {"messages": USER, "add_generation_prompt": False}, 400, "continue_final"),
    ("/chat/completions", {"messages": USER, "temperature": 5}, 400, "temperature"),
    ("/chat/completions", {"messages": USER, "top_logprobs": 3}, 400, "logprobs"),
    ("/chat/completions", {"messages": USER, "logprobs": True, "top_logprobs": 21}, 400, "top_logprobs"),
    ("/chat/completions", {"messages": USER, "max_tokens": 0}, 400, "max_tokens"),
    ("/chat/completions", {"messages": [{"content": "x"}]}, 400, "role"),
    ("/completions", {"prompt": [1, 2]}, 400, "prompt"),
    ("/completions", {"prompt": "x", "stop": [""]}, 400, "stop"),
    ("/completions", {"prompt": "x", "echo": True}, 400, "echo"),
    ("/embeddings", {"input": "x"}, 404, "not served"),
])
def test_errors_are_openai_shaped(server, path, body, status, fragment):
    got, payload = post(server, path, body)
    assert got == status and fragment in payload["error"]["message"]
    assert set(payload["error"]) == {"message", "type", "param", "code"}


def test_invalid_json_and_models_listing(server):
    request = urllib.request.Request(server.url + "/completions", data=b"{not json")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    assert info.value.code == 400 and "JSON" in json.loads(info.value.read())["error"]["message"]
    with urllib.request.urlopen(server.url + "/models", timeout=30) as response:
        assert [m["id"] for m in json.loads(response.read())["data"]] == ["tiny"]
