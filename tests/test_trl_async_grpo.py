"""WholeGroupReward under TRL's own AsyncGRPOTrainer scoring code (``_score_group``, TRL 1.16):
one reward call per whole group, then TRL's group advantage; every violator's is negative."""

from __future__ import annotations

import asyncio
import json
import pickle

import numpy as np
import pytest

from quillrl.integrations.trl import WholeGroupReward
from test_reward_server import FORBID_MOON, TEXTS, make_config, served

pytest.importorskip("trl.experimental.async_grpo.async_rollout_worker")


def score_with_trl(reward_func, group_size: int = 4):
    """Run TRL's ``_AsyncRolloutLoop._score_group`` on one group of TEXTS (no vLLM: the loop's
    generation side is not needed to score, so the object gets only what scoring reads)."""
    from accelerate import PartialState
    from trl.experimental.async_grpo import async_rollout_worker as w
    from trl.trainer.utils import get_callable_name

    PartialState()  # TRL's worker logs through accelerate's logger, as in its spawned process

    loop = object.__new__(w._AsyncRolloutLoop)
    loop.reward_funcs = [reward_func]
    loop.reward_func_names = [get_callable_name(reward_func)]
    loop._env_reward_types, loop._provides_rollout_reward = [], False
    seq = lambda i: w.TrainingSequence([1, 2, 3], [0, 1, 1], [0.0, -1.0, -1.0], f"r{i}")  # noqa: E731
    group = w.RolloutGroup(
        prompts=[[{"role": "user", "content": "Write about the night."}]] * group_size,
        reward_kwargs={"constraints": [json.dumps(FORBID_MOON)] * group_size},
        completions=[[{"role": "assistant", "content": t}] for t in TEXTS[:group_size]],
        completions_ids=[[1]] * group_size, completions_sequences=[[seq(i)] for i in range(group_size)],
        tool_call_counts=[0] * group_size, tool_failure_counts=[0] * group_size, model_version=0,
        group_id=7, env_rewards=[None] * group_size, rollout_rewards=[None] * group_size)
    samples = asyncio.run(loop._score_group(group))
    return np.array([s.metrics["reward"] for s in samples]), np.array([s.advantage for s in samples])


def check_violators(rewards, advantages):
    violates = np.array(["moon" in t for t in TEXTS])
    assert violates.any() and (~violates).any()
    assert (rewards[violates] < rewards.mean()).all() and (advantages[violates] < 0).all()


def test_in_process_whole_group_reward_through_trl_score_group():
    func = pickle.loads(pickle.dumps(WholeGroupReward(reward={"judge": "baseline:length",
                                                              "strategy": "round_robin"})))
    rewards, advantages = score_with_trl(func)
    check_violators(rewards, advantages)
    # the longest text violates: under a length judge alone it would have the highest reward
    assert rewards[0] < rewards[2]


def test_remote_whole_group_reward_through_trl_score_group():
    with served(make_config()) as server:
        rewards, advantages = score_with_trl(WholeGroupReward(url=server.url))
        assert server.service.metrics.summary()["groups_complete"] == 1
    check_violators(rewards, advantages)


def test_url_and_sections_together_are_refused():
    from quillrl.errors import ConfigError

    with pytest.raises(ConfigError):
        WholeGroupReward(url="http://127.0.0.1:1", reward={"judge": "baseline:length"})
