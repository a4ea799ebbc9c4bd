"""``quillrl serve`` as a user runs it (a real process), and the embedded model end to end."""

from __future__ import annotations

import json
import urllib.request

import pytest
from typer.testing import CliRunner

from quillrl.backends import ChatPrompt, SamplingParams
from quillrl.cli import app


def test_serve_prints_its_url_and_answers(tiny_model_dir, launch_server):
    proc, summary = launch_server(["serve", "--model", str(tiny_model_dir), "--port", "0",
                                   "--served-model-name", "tiny"])
    try:
        assert summary["model"] == "tiny" and summary["url"].startswith("http://127.0.0.1:")
        request = urllib.request.Request(
            summary["url"] + "/chat/completions", headers={"Content-Type": "application/json"},
            data=json.dumps({"model": "tiny", "max_tokens": 2, "temperature": 0,
                             "messages": [{"role": "user", "content": "hi"}]}).encode())
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
        assert body["usage"]["completion_tokens"] == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_reports_a_missing_model_without_a_traceback(tmp_path):
    result = CliRunner().invoke(app, ["serve", "--model", str(tmp_path / "nope"), "--port", "0"])
    assert result.exit_code == 2 and "never downloads" in result.output


@pytest.mark.integration
def test_embedded_model_through_the_server_matches_in_process(embedded_model_dir):
    from quillrl.backends import make_backend
    from quillrl.backends.server import OpenAIServer

    local = make_backend(f"local:{embedded_model_dir}")
    question = ("Story A: The cat sat.\nStory B: The dragon sang to the sea until the moon rose.\n"
                "Which story is better? Answer with A or B.")
    prompts = [ChatPrompt.user(question, assistant_prefix="Answer:"), ChatPrompt.user(question)]
    choices = [" A", " B"]
    with OpenAIServer(local, "127.0.0.1", 0).start() as server, \
            make_backend(f"openai:{server.url}") as remote:
        here, there = local.choice_probs(prompts, choices), remote.choice_probs(prompts, choices)
        params = SamplingParams(max_new_tokens=6, stop=("\n",))
        texts = [g.text for g in remote.generate(prompts, params)]
    assert there[0] == pytest.approx(here[0], rel=1e-3)
    assert here[0].sum() > 0.2  # the prefix steers the real model to answer with a letter
    assert texts == [g.text for g in local.generate(prompts, params)]
    assert all(texts)
