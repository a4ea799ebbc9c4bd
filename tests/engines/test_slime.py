"""slime (THUDM/slime@624b824, its package unpacked into $QUILLRL_ENGINES_HOME/slime-624b824) against
a real ``quillrl serve-reward`` on loopback, run in the verl venv:

    $QUILLRL_ENGINES_HOME/verl/bin/python -m pytest tests/engines/test_slime.py

slime's own reward code is driven: ``slime.rollout.rm_hub.async_rm`` (one sample: our
``--custom-rm-path`` adapter, or the built-in ``remote_rm``) and ``batched_async_rm``
(``--group-rm``), with real ``slime.utils.types.Sample`` objects numbered the way slime's data
source (training) and ``eval_rollout_single_dataset`` (eval, ``group_index=None``) number them.
The advantages are slime's own group normalisation, ``RolloutManager._post_process_rewards``
(``slime/ray/rollout.py``), compiled from that file because the module imports sglang (no CPU
install). The flags come from docs/scale.md's marker blocks.
"""

from __future__ import annotations

import asyncio
import copy
import sys
from argparse import Namespace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _ors_common import (ENGINES_HOME, FORBID_MOON, RewardServer, Timer, check_violators,  # noqa: E402
                         doc_block, engine_function, flags, report, server_config)

SLIME = ENGINES_HOME / "slime-624b824"
if not (SLIME / "slime").is_dir():
    pytest.skip(f"slime is not unpacked at {SLIME} (engines/build.sh)", allow_module_level=True)
if str(SLIME) not in sys.path:
    sys.path.insert(0, str(SLIME))

import torch  # noqa: E402
from slime.rollout import rm_hub  # noqa: E402
from slime.utils.types import Sample  # noqa: E402

PROMPTS = ["Write about the night.", "Write about a harbour at dawn.", "Write a fable about a fox."]


def texts(n: int, tag: str) -> list[str]:
    """n responses of rising length; the odd ones violate (they say "moon"), the longest among them."""
    return [f"{tag} " + "la " * (2 * i + 1) + ("under the moon" if i % 2 else "under the sun") for i in range(n)]


def violates(text: str) -> bool:
    return "moon" in text


def slime_args(block: str, url: str, **extra) -> Namespace:
    """slime's args for the flags in a docs/scale.md block (the doc's host:port -> the live server),
    each flag checked to exist in slime's own parser (slime/utils/arguments.py)."""
    parser_src = (SLIME / "slime" / "utils" / "arguments.py").read_text()
    values = {}
    for flag, value in flags(doc_block(block)).items():
        assert f'"{flag}"' in parser_src, f"docs/scale.md: {flag} is not a slime flag"
        if flag == "--rm-url":
            value = str(value).replace("http://127.0.0.1:8100", url)
        elif isinstance(value, str) and value.isdigit():
            value = int(value)
        values[flag[2:].replace("-", "_")] = value
    base = dict(custom_rm_path=None, rm_type=None, group_rm=False, reward_key=None,
                n_samples_per_eval_prompt=1, advantage_estimator="grpo", rewards_normalization=True,
                grpo_std_normalization=True)
    return Namespace(**{**base, **values, **extra})


def train_groups(n: int, groups: int = 2, first_group: int = 0) -> list[list[Sample]]:
    """Samples as slime's data source makes them (slime/rollout/data_source.py): per prompt, n deep
    copies with one group_index and consecutive index. Each test takes its own group_index range
    (and so its own prompts): a group id is never reused within one server."""
    out = []
    for g in range(first_group, first_group + groups):
        prompt = Sample(prompt=PROMPTS[g % len(PROMPTS)] + f" (#{g})", label=_label())
        group = []
        for j, text in enumerate(texts(n, f"g{g}")):
            s = copy.deepcopy(prompt)
            s.group_index, s.index, s.response = g, g * n + j, text
            group.append(s)
        out.append(group)
    return out


def _label() -> str:
    import json

    return json.dumps(FORBID_MOON)


def advantages(args: Namespace, samples: list[Sample]) -> list[float]:
    """slime's own GRPO group normalisation of the rewards it received."""
    post = engine_function(SLIME / "slime" / "ray" / "rollout.py", "_post_process_rewards", "RolloutManager",
                           {"torch": torch, "Sample": Sample})
    manager = Namespace(custom_reward_post_process_func=None, args=args)
    _, normalised = post(manager, samples)
    return normalised


def run(coro, timeout: float = 60.0):
    """One rollout's reward calls; a wait past ``timeout`` (a group that never fills) fails fast."""
    rm_hub._shared_session = None  # remote_rm's pool belongs to the event loop that made it
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def server():
    with RewardServer(server_config(doc_block("slime-serve-config"))) as s:
        yield s


def _check_train(args, groups, scenario, seconds):
    flat = [s for g in groups for s in g]
    adv = advantages(Namespace(**{**vars(args), "rollout_batch_size": len(groups)}), flat)
    for g, group in enumerate(groups):  # report first: the figures show even when a check fails
        report(scenario, group=g, rewards=[s.get_reward_value(args) for s in group],
               passed=[not violates(s.response) for s in group],
               advantages=adv[g * len(group):(g + 1) * len(group)], seconds=seconds, advantage_fn=post_source())
    for g, group in enumerate(groups):
        rewards = [s.get_reward_value(args) for s in group]
        passed = [not violates(s.response) for s in group]
        answers = [s.reward for s in group]
        assert not any(a.get("partial") for a in answers), answers
        assert all(a.get("group_size") == len(group) for a in answers), answers
        assert [a["passed"] for a in answers] == passed
        check_violators(rewards, passed, adv[g * len(group):(g + 1) * len(group)])


def post_source() -> str:
    return "slime/ray/rollout.py:RolloutManager._post_process_rewards"


def test_custom_rm_clean_groups(server):
    """--custom-rm-path quillrl.integrations.slime.reward: slime's async_rm per sample, all in flight."""
    args = slime_args("slime-command", server.url)
    n = args.n_samples_per_prompt
    groups = train_groups(n)

    async def rollout():
        flat = [s for g in groups for s in g]
        return await asyncio.gather(*(rm_hub.async_rm(args, s) for s in flat))

    with Timer() as t:
        answers = run(rollout())
    for s, a in zip([s for g in groups for s in g], answers):
        s.reward = a
    _check_train(args, groups, "slime custom-rm clean groups", t.seconds)


def test_custom_rm_resent_sample_replays_its_slot(server):
    """A sample sent twice (slime re-running a reward) keeps one place: the group is still n."""
    args = slime_args("slime-command", server.url)
    n = args.n_samples_per_prompt
    groups = train_groups(n, groups=1, first_group=100)

    async def rollout():
        flat = groups[0] + [groups[0][0]]
        return await asyncio.gather(*(rm_hub.async_rm(args, s) for s in flat))

    with Timer() as t:
        answers = run(rollout(), timeout=30)
    assert answers[0]["reward"] == answers[-1]["reward"] and answers[0].get("slot") == answers[-1].get("slot") == 0
    for s, a in zip(groups[0], answers):
        s.reward = a
    _check_train(args, groups, "slime custom-rm re-sent sample", t.seconds)


@pytest.mark.parametrize("eval_n", ["doc", 1])
def test_eval_samples_without_group_index(server, eval_n):
    """Eval: slime sets index = i * n + j and leaves group_index None (eval_rollout_single_dataset);
    each prompt's n samples must be one group of that prompt alone (n=1: a singleton)."""
    args = slime_args("slime-command", server.url)
    if eval_n != "doc":
        args.n_samples_per_eval_prompt = eval_n
    n = args.n_samples_per_eval_prompt
    samples, index = [], 0
    for p, prompt_text in enumerate(PROMPTS[:2]):
        prompt_sample = Sample(prompt=prompt_text, label=_label())  # as slime's Dataset makes it
        for text in (texts(n, f"eval{p}") if n > 1 else [f"eval{p} under the moon"]):
            s = copy.deepcopy(prompt_sample)
            s.index, s.response = index, text
            index += 1
            samples.append(s)
    if n == 1:  # one compliant sample per prompt too, at its own index
        for p, prompt_text in enumerate(PROMPTS[:2]):
            samples.append(Sample(prompt=prompt_text, label=_label(), index=index, response=f"eval{p} sun"))
            index += 1
    assert all(s.group_index is None for s in samples)

    async def rollout():
        return await asyncio.gather(*(rm_hub.async_rm(args, s) for s in samples))

    with Timer() as t:
        answers = run(rollout())
    by_group: dict[str, list[tuple[Sample, dict]]] = {}
    for s, a in zip(samples, answers):
        assert not a.get("partial"), a
        assert a["group_size"] == n, a
        by_group.setdefault(a.get("group_id") or a.get("group_key"), []).append((s, a))
    for key, members in by_group.items():
        assert len({s.prompt for s, _ in members}) == 1, f"group {key} mixes prompts"
        assert len(members) == n
        rewards = [a["reward"] for _, a in members]
        passed = [not violates(s.response) for s, _ in members]
        assert [a["passed"] for _, a in members] == passed
        if n > 1:
            check_violators(rewards, passed, None)
        else:
            assert members[0][1].get("singleton") is True
        report(f"slime eval n={n}", group=key, rewards=rewards, passed=passed, advantages=None,
               seconds=t.seconds)
    if n == 1:  # the singleton rule: a violator gets less than a compliant sample would
        for p in PROMPTS[:2]:
            got = {violates(s.response): a["reward"] for s, a in zip(samples, answers) if s.prompt == p}
            assert got[True] < got[False], got


def test_group_rm(server):
    """--group-rm: slime's batched_async_rm hands our function one whole group."""
    args = slime_args("slime-group-rm-command", server.url)
    assert args.group_rm is True
    groups = train_groups(args.n_samples_per_prompt, first_group=200)

    async def rollout():
        return await asyncio.gather(*(rm_hub.batched_async_rm(args, g) for g in groups))

    with Timer() as t:
        answers = run(rollout())
    for group, results in zip(groups, answers):
        for s, a in zip(group, results):
            s.reward = a
    _check_train(args, groups, "slime --group-rm", t.seconds)


def test_builtin_remote_rm(server):
    """--rm-type remote_rm: slime's own remote_rm posts {prompt, response, label}; the server keys by prompt."""
    args = slime_args("slime-remote-rm-command", server.url)
    groups = train_groups(args.n_samples_per_prompt, first_group=300)

    async def rollout():
        return await asyncio.gather(*(rm_hub.async_rm(args, s) for g in groups for s in g))

    with Timer() as t:
        answers = run(rollout())
    for s, a in zip([s for g in groups for s in g], answers):
        s.reward = a
    _check_train(args, groups, "slime built-in remote_rm", t.seconds)


def test_remote_rm_pool_of_64_starves_the_barrier_and_the_adapter_does_not():
    """10 groups of 8 whose samples finish interleaved: remote_rm's 64 connections all hold members
    of incomplete groups, so every group waits out group.timeout_s (shortened here) and is partial;
    our --custom-rm-path adapter (a connection per request) gets all 80 answers whole."""
    config = server_config(doc_block("slime-serve-config"), timeout_s=3.0)
    n, groups_n = 8, 10
    with RewardServer(config) as s:
        remote = slime_args("slime-remote-rm-command", s.url, n_samples_per_prompt=n)
        ours = slime_args("slime-command", s.url, n_samples_per_prompt=n)
        figures = {}
        for name, args in (("remote_rm", remote), ("custom-rm adapter", ours)):
            groups = train_groups(n, groups_n, first_group=(0 if name == "remote_rm" else 100))
            interleaved = [groups[g][j] for j in range(n) for g in range(groups_n)]

            async def rollout():
                return await asyncio.gather(*(rm_hub.async_rm(args, x) for x in interleaved))

            with Timer() as t:
                answers = run(rollout(), timeout=120)
            partial = sum(bool(a.get("partial")) for a in answers)
            figures[name] = partial
            report(f"slime pool: {name}, {groups_n} groups of {n} interleaved", partial=partial,
                   answers=len(answers), seconds=t.seconds)
    assert figures["remote_rm"] > 0.5 * n * groups_n  # the documented limit
    assert figures["custom-rm adapter"] == 0
