"""OpenRLHF 0.11.2 against a real ``quillrl serve-reward`` on loopback, run in its venv:

    $QUILLRL_ENGINES_HOME/openrlhf/bin/python -m pytest tests/engines/test_openrlhf.py

OpenRLHF's own code is driven: ``openrlhf.utils.agent.SingleTurnAgentExecutor.execute`` (it
tokenizes the prompt, truncates it from the left when it is too long, asks the engine for a
response, decodes prompt + response with ``skip_special_tokens=False`` and posts it through
``_fetch_rewards_via_http``, with its own timeout and retries) with a byte-level tokenizer trained
here and a stand-in for vLLM that returns fixed response tokens. The advantages are OpenRLHF's own
``RemoteExperienceMaker.compute_advantages_and_returns`` (``group_norm``, i.e. GRPO, and
``dr_grpo``), compiled from ``openrlhf/trainer/ppo_utils/experience_maker.py`` because that module
imports ray and deepspeed. The flags and the server config come from docs/scale.md's marker blocks.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import sys
import typing
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _ors_common import (RewardServer, Timer, check_violators, doc_block, engine_function,  # noqa: E402
                         flags, report, server_config)

agent = pytest.importorskip("openrlhf.utils.agent")
import torch  # noqa: E402
from openrlhf.trainer.ppo_utils.length_penalty import apply_length_penalties  # noqa: E402
from openrlhf.utils.logging_utils import init_logger  # noqa: E402

OPENRLHF = Path(agent.__file__).resolve().parents[1]
INCLUDE_LANTERN = [{"id": "creative:include_words", "kwargs": {"words": ["lantern"]}}]
FORBID_MOON = [{"id": "creative:forbid_words", "kwargs": {"words": ["moon"]}}]
IM_START, IM_END = "<|im_start|>", "<|im_end|>"


def chat(user: str) -> str:
    return f"{IM_START}user\n{user}{IM_END}\n{IM_START}assistant\n"


def texts(n: int, tag: str, bad: str = "under the moon", good: str = "under the sun") -> list[str]:
    """n responses of rising length; the odd ones violate, the longest among them."""
    return [f"{tag} " + "la " * (2 * i + 1) + (bad if i % 2 else good) for i in range(n)]


@functools.lru_cache(maxsize=1)
def tokenizer():
    """A byte-level BPE tokenizer (decode(encode(x)) == x) with the chat special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [chat("Write about the night, the sea and a lantern.")] + texts(8, "x")
    tok.train_from_iterator(corpus * 20, trainers.BpeTrainer(
        vocab_size=400, special_tokens=[IM_START, IM_END], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=IM_END)
    probe = chat("Write a lantern, the moon!") + "la la" + IM_END
    assert hf.decode(hf(text=probe, add_special_tokens=False)["input_ids"], skip_special_tokens=False) == probe
    return hf


class FixedEngine:
    """vLLM's ``AsyncLLMEngine.generate`` as the executor calls it, answering one fixed response."""

    def __init__(self, response: str):
        self.ids = tokenizer()(text=response + IM_END, add_special_tokens=False)["input_ids"]
        self.text = response + IM_END
        self.seen: list[int] = []

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        self.seen = list(prompt_token_ids)
        out = SimpleNamespace(token_ids=self.ids, text=self.text, finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[out])


def doc_flags() -> dict:
    """--flag: value from docs/scale.md's OpenRLHF command, each checked against OpenRLHF's parser."""
    parser_src = (OPENRLHF / "cli" / "train_ppo_ray.py").read_text()
    out = flags(doc_block("openrlhf-command"))
    for flag in out:
        assert f'"{flag}"' in parser_src, f"docs/scale.md: {flag} is not an OpenRLHF flag"
    return out


def remote_url(server: RewardServer) -> str:
    return str(doc_flags()["--reward.remote_url"]).replace("http://127.0.0.1:8100", server.url)


async def rollout(server, prompt: str, label: str, responses: list[str], max_length: int = 2048,
                  max_tokens: int | None = None) -> list[dict]:
    """One prompt's n samples through OpenRLHF's SingleTurnAgentExecutor, all in flight."""
    executor = agent.SingleTurnAgentExecutor(remote_rm_url=[remote_url(server)])
    params = SimpleNamespace(max_tokens=max_tokens, logprobs=None)
    return await asyncio.gather(*(executor.execute(prompt, label, params, max_length, tokenizer(), FixedEngine(r))
                                  for r in responses))


def advantages(rewards: list[float], n: int, estimator: str) -> list[float]:
    """OpenRLHF's own compute_advantages_and_returns (experience_maker.py) on one experience per sample."""
    maker_py = OPENRLHF / "trainer" / "ppo_utils" / "experience_maker.py"
    ns = {"torch": torch, "itertools": itertools, "List": typing.List, "Tuple": typing.Tuple,
          "Experience": object, "apply_length_penalties": apply_length_penalties,
          "logger": init_logger("quillrl-test")}
    ns["compute_reward"] = engine_function(OPENRLHF / "models" / "utils.py", "compute_reward", None,
                                           {"torch": torch, **vars(typing)})
    compute = engine_function(maker_py, "compute_advantages_and_returns", "RemoteExperienceMaker", ns)
    returns = engine_function(maker_py, "get_cumulative_returns", "RemoteExperienceMaker", ns)
    args = SimpleNamespace(rollout=SimpleNamespace(n_samples_per_prompt=n),
                           algo=SimpleNamespace(advantage=SimpleNamespace(estimator=estimator, gamma=1.0,
                                                                          lambd=1.0, no_std_norm=False)),
                           reward=SimpleNamespace(clip_range=None), data=SimpleNamespace(max_len=2048))
    maker = SimpleNamespace(strategy=SimpleNamespace(args=args), kl_ctl=SimpleNamespace(value=0.0),
                            advantage_estimator=estimator)
    maker.get_cumulative_returns = functools.partial(returns, maker)
    steps = 4
    experiences = [SimpleNamespace(rewards=torch.tensor([r]), index=[i], kl=torch.zeros(1, steps),
                                   action_mask=torch.ones(1, steps, dtype=torch.bool), info={}, values=None)
                   for i, r in enumerate(rewards)]
    compute(maker, experiences)
    return [float(e.advantages[0, 0]) for e in experiences]


ADVANTAGE_FN = "openrlhf/trainer/ppo_utils/experience_maker.py:RemoteExperienceMaker.compute_advantages_and_returns"


def scalar(value) -> float:
    """A reward or extra log as OpenRLHF turns it into a tensor (samples_generator.py:
    ``torch.tensor([reward_val])``; the server answers one-element lists, as cli/serve_rm.py does)."""
    return float(torch.tensor([value]).flatten()[0])


def check_groups(scenario: str, groups: list[tuple[list[str], list[dict], list[bool]]], seconds: float) -> None:
    """Per group: every violator below the mean, and a negative advantage from OpenRLHF's group_norm
    and dr_grpo (the rewards laid out prompt by prompt, as OpenRLHF reshapes them)."""
    n = len(groups[0][0])
    flat = [scalar(o["reward"]) for _, outs, _ in groups for o in outs]
    adv = {e: advantages(flat, n, e) for e in ("group_norm", "dr_grpo")}
    for g, (responses, outs, passed) in enumerate(groups):  # report first: the figures show even when it fails
        report(scenario, group=g, rewards=[scalar(o["reward"]) for o in outs], passed=passed,
               server_passed=[bool(scalar(o["extra_logs"]["passed"])) for o in outs],
               advantages=adv["group_norm"][g * n:(g + 1) * n], advantages_dr_grpo=adv["dr_grpo"][g * n:(g + 1) * n],
               seconds=seconds, advantage_fn=ADVANTAGE_FN)
    for g, (responses, outs, passed) in enumerate(groups):
        rewards = [scalar(o["reward"]) for o in outs]
        got_passed = [bool(scalar(o["extra_logs"]["passed"])) for o in outs]
        assert got_passed == passed, (got_passed, passed)
        assert not any(scalar(o["extra_logs"]["partial"]) for o in outs)
        for e in adv:
            check_violators(rewards, passed, adv[e][g * n:(g + 1) * n])


@pytest.fixture(scope="module")
def server():
    with RewardServer(server_config(doc_block("openrlhf-serve-config"))) as s:
        yield s


def test_doc_sizes_agree():
    """The doc's rollout n, eval n and the server's group.size are one number (eval groups whole)."""
    import yaml

    f = doc_flags()
    size = yaml.safe_load(doc_block("openrlhf-serve-config"))["group"]["size"]
    assert int(f["--rollout.n_samples_per_prompt"]) == int(f["--eval.n_samples_per_prompt"]) == size


def _run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.mark.parametrize("flag", ["--rollout.n_samples_per_prompt", "--eval.n_samples_per_prompt"])
def test_clean_groups(server, flag):
    """Training groups, and eval groups (--eval.n_samples_per_prompt), through OpenRLHF's executor."""
    n = int(doc_flags()[flag])
    label = json.dumps(FORBID_MOON)
    prompts = [chat(f"Write about the night ({flag}, {p}).") for p in range(2)]
    responses = [texts(n, f"p{p}") for p in range(2)]

    async def both():
        return await asyncio.gather(*(rollout(server, p, label, r) for p, r in zip(prompts, responses)))

    with Timer() as t:
        outs = _run(both())
    check_groups(f"openrlhf clean groups ({flag} {n})",
                 [(r, o, [("moon" not in x) for x in r]) for r, o in zip(responses, outs)], t.seconds)


def test_truncated_prompt_is_split_by_the_suffix_rule(server):
    """--rollout.max_new_tokens with a long prompt: OpenRLHF keeps the prompt's last tokens, so the
    query no longer starts with the prompt. The prompt says "lantern" (the constraint's word) near
    its end: scoring the whole query would let every violator pass and the longest one win."""
    n = int(doc_flags()["--rollout.n_samples_per_prompt"])
    label = json.dumps(INCLUDE_LANTERN)
    prompt = chat("Filler about the sea and the night. " * 12 + "Now write about a lantern.")
    responses = texts(n, "t", bad="and a candle", good="and a lantern")
    prompt_len = len(tokenizer()(text=prompt, add_special_tokens=False)["input_ids"])
    max_tokens = 64
    max_length = prompt_len - 10 + max_tokens  # OpenRLHF drops the prompt's first 10 tokens

    with Timer() as t:
        outs = _run(rollout(server, prompt, label, responses, max_length=max_length, max_tokens=max_tokens))
    assert all(o["reward"] is not None for o in outs), "the server refused a query the suffix rule splits"
    flagged = [o["extra_logs"].get("prompt_truncated") for o in outs]
    assert all(f is None or scalar(f) == 1.0 for f in flagged), flagged
    check_groups("openrlhf truncated prompt (suffix rule)", [(responses, outs, [("lantern" in r) for r in responses])],
                 t.seconds)


def test_prompt_cut_below_the_rule_is_refused_not_scored(server):
    """When less than 16 characters of the prompt are left, the server answers 400; OpenRLHF's client
    retries 5 times, gives up, and the sample gets no reward (never the query scored as a response)."""
    label = json.dumps(INCLUDE_LANTERN)
    prompt = chat("Filler about the sea and the night. " * 6 + "Now write about a lantern.")
    prompt_len = len(tokenizer()(text=prompt, add_special_tokens=False)["input_ids"])
    before = server.metric("quillrl_requests_total", path="/openrlhf", status="400")
    with Timer() as t:
        outs = _run(rollout(server, prompt, label, ["and a candle"], max_length=2 + 16, max_tokens=16), 30)
    assert prompt_len > 2 and outs[0]["reward"] is None
    refused = server.metric("quillrl_requests_total", path="/openrlhf", status="400") - before
    assert refused >= 1
    report("openrlhf prompt cut below 16 chars", reward=None, refused_400=refused, seconds=t.seconds)


def test_client_timeout_and_retry_keeps_one_place(server, monkeypatch):
    """OpenRLHF's own timeout-and-retry: its ClientTimeout(total=180) is fixed in
    _fetch_rewards_via_http, so it is shortened here (aiohttp.ClientTimeout as agent.py sees it).
    The first sample's request waits at the barrier, times out, and is re-sent; the others arrive
    after. The re-sent request must take the abandoned place (group of n, not partial), and the
    abandoned request is counted as 499 in /metrics, never 500."""
    real = agent.aiohttp.ClientTimeout
    client_timeout = 3.0
    monkeypatch.setattr(agent.aiohttp, "ClientTimeout", lambda total=None, **kw: real(total=client_timeout))
    n = int(doc_flags()["--rollout.n_samples_per_prompt"])
    label = json.dumps(FORBID_MOON)
    prompt = chat("Write about the night (retry).")
    responses = texts(n, "r")
    before = {s: server.metric("quillrl_requests_total", path="/openrlhf", status=s) for s in ("499", "500")}

    async def late_group():
        executor = agent.SingleTurnAgentExecutor(remote_rm_url=[remote_url(server)])
        params = SimpleNamespace(max_tokens=None, logprobs=None)
        first = asyncio.ensure_future(executor.execute(prompt, label, params, 2048, tokenizer(),
                                                       FixedEngine(responses[0])))
        await asyncio.sleep(client_timeout + 1.5)  # timed out at 3 s, re-sent at 4 s
        rest = await asyncio.gather(*(executor.execute(prompt, label, params, 2048, tokenizer(), FixedEngine(r))
                                      for r in responses[1:]))
        return [await first] + rest

    with Timer() as t:
        outs = _run(late_group(), 45)
    after = {s: server.metric("quillrl_requests_total", path="/openrlhf", status=s) for s in ("499", "500")}
    took_over = server.metric("quillrl_reward_members_total", outcome="taken_over")
    assert all(o["reward"] is not None for o in outs)
    check_groups("openrlhf client timeout + retry", [(responses, outs, [("moon" not in r) for r in responses])],
                 t.seconds)
    assert after["499"] - before["499"] >= 1, after
    assert after["500"] == before["500"], after
    assert took_over >= 1
    report("openrlhf client timeout + retry (metrics)", status_499=after["499"] - before["499"],
           status_500=after["500"] - before["500"], taken_over=took_over, seconds=t.seconds)
