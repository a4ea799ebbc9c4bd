"""The reasoning prefill (docs/design.md, "Reasoning prefill") in every path: one template
function, sent by the local, openai and vllm backends, continued and parsed as one judgment."""

from __future__ import annotations

import math
import re
import sys
import types
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pytest

from quillrl.backends import SamplingParams, make_backend
from quillrl.backends.openai_compat import OpenAIBackend
from quillrl.backends.prompts import encode
from quillrl.judges import GenRMJudge
from quillrl.judges.template import REASONING_PREFILL, as_conversation, judge_prompt

SRC = Path(__file__).resolve().parents[1] / "src" / "quillrl"
PAIR = ("Write about the sea.", "The knight walked home; the moon was bright.", "a fox")


def test_no_module_but_the_template_spells_the_prefill():
    # every path gets the prefill from judges/template.py, so none can drift from it
    spelled = re.compile(r"""["']<analysis>\\n|["']Coherence:""")
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
                 if p.name != "template.py" and spelled.search(p.read_text())]
    assert offenders == []


def test_local_backend_continues_the_prefill(tiny_model_dir):
    backend = make_backend(f"local:{tiny_model_dir}", device="cpu")
    sent = []
    generate = backend.generate
    backend.generate = lambda prompts, params: sent.extend(prompts) or generate(prompts, params)
    judgment = GenRMJudge(backend, max_new_tokens=4).compare(*PAIR)
    rendered = backend.tokenizer.decode(encode(backend.tokenizer, sent[0]))
    assert rendered.endswith("<|im_start|>assistant\n" + REASONING_PREFILL)
    # a random tiny model cannot finish in 4 tokens: prefill + reply is a truncated judgment
    assert not judgment.valid and "truncated" in judgment.error


def test_openai_request_continues_the_final_assistant_message():
    prompt = judge_prompt(*PAIR)
    backend = OpenAIBackend("http://127.0.0.1:1/v1", "m")
    kind, kwargs = backend._request(prompt, SamplingParams(max_new_tokens=8), 0, "m")
    assert kind == "chat" and kwargs["messages"] == as_conversation(prompt)
    assert kwargs["messages"][-1] == {"role": "assistant", "content": REASONING_PREFILL}
    assert kwargs["extra_body"] == {"add_generation_prompt": False, "continue_final_message": True}
    # the fallback for servers without continue_final_message: a plain final assistant message
    plain = OpenAIBackend("http://127.0.0.1:1/v1", "m", continue_final_message=False)
    _, kwargs = plain._request(prompt, SamplingParams(max_new_tokens=8), 0, "m")
    assert kwargs["messages"][-1]["content"] == REASONING_PREFILL and "extra_body" not in kwargs
    backend.close(), plain.close()


def test_openai_400_on_continue_final_message_names_the_fallback():
    from quillrl.backends.openai_compat import _prefill_hint

    rejected = NS(status_code=400)  # what a server without the field answers
    assert "continue_final_message=False" in _prefill_hint(rejected, {"extra_body": {"continue_final_message": True}})
    assert _prefill_hint(rejected, {}) == "" and _prefill_hint(NS(status_code=500), {"extra_body": {
        "continue_final_message": True}}) == ""


@pytest.fixture()
def fake_vllm(monkeypatch, tiny_model_dir):
    """vLLM's documented offline API (LLM.generate on {"prompt_token_ids"} with SamplingParams,
    RequestOutput.outputs[0].text/token_ids/logprobs), replying with a scripted judgment."""
    from quillrl.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    seen: list = []

    class LLM:
        def __init__(self, model, **options):
            pass

        def get_tokenizer(self):
            return tokenizer

        def generate(self, inputs, sampling, use_tqdm=True, lora_request=None):
            seen.extend(inputs)
            one = sampling if not isinstance(sampling, list) else sampling[0]
            if one.max_tokens == 1:  # choice_probs: the letter after <verdict>
                a, b = (tokenizer.convert_tokens_to_ids(t) for t in ("A", "B"))
                logprobs = [{a: NS(logprob=math.log(0.7), decoded_token="A"),
                             b: NS(logprob=math.log(0.3), decoded_token="B")}]
                return [NS(prompt_token_ids=i["prompt_token_ids"], outputs=[
                    NS(text="A", token_ids=[a], finish_reason="length", logprobs=logprobs)]) for i in inputs]
            text = " A holds together.\n</analysis>\n<verdict>A"
            return [NS(prompt_token_ids=i["prompt_token_ids"], outputs=[
                NS(text=text, token_ids=[1, 2, 3], finish_reason="stop", logprobs=None)]) for i in inputs]

    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = LLM, lambda **kw: NS(**kw)
    monkeypatch.setitem(sys.modules, "vllm", module)
    return tokenizer, seen


def test_vllm_backend_feeds_the_prefill_and_the_judge_reads_one_judgment(fake_vllm, tiny_model_dir):
    tokenizer, seen = fake_vllm
    judge = GenRMJudge(make_backend(f"vllm:{tiny_model_dir}"), max_new_tokens=64)
    j = judge.compare(*PAIR)
    assert seen[0]["prompt_token_ids"] == encode(tokenizer, judge_prompt(*PAIR))
    assert tokenizer.decode(seen[0]["prompt_token_ids"]).endswith(REASONING_PREFILL)
    assert j.valid and j.verdict == "A" and j.p_a == pytest.approx(0.7)
    assert j.analysis == "Coherence: A holds together."
    # the probe is the prefill + the reply up to <verdict>
    assert tokenizer.decode(seen[1]["prompt_token_ids"]).endswith(
        REASONING_PREFILL + " A holds together.\n</analysis>\n<verdict>")
    assert np.isfinite(j.entropy)
