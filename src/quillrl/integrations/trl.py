"""``RemoteGroupReward``: a TRL reward function that asks ``serve-reward`` for mixed rewards.

A drop-in for ``GRPOTrainer(reward_funcs=[RemoteGroupReward(url, group_size=G)])`` when the
judge runs on another host. TRL calls reward functions on each process's own slice of the batch,
where a group can straddle processes; each process sends its members of a group with the same
key (``trl:<global_step>:<prompt digest>``) and group size, and the server's barrier joins them,
so the mix still sees whole groups. (A prompt drawn twice in one step makes one key of 2G
members: the server splits it into two groups in arrival order.)
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

from ..scoring.reward_funcs import completion_text, prompt_text
from .client import RewardClient


class RemoteGroupReward:
    """``f(prompts, completions, constraints=None, trainer_state=None, **_) -> list[float]``."""

    __name__ = "remote_group_reward"

    def __init__(self, url: str, group_size: int, token_env: str | None = None, timeout: float = 900.0):
        self.client = RewardClient(url, token_env=token_env, timeout=timeout)
        self.group_size = group_size

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], constraints: Sequence[Any] | None = None,
                 trainer_state: Any = None, **_: Any) -> list[float]:
        step = getattr(trainer_state, "global_step", 0)
        constraints = constraints if constraints is not None else [None] * len(completions)
        by_key: dict[str, list[int]] = defaultdict(list)
        texts = [prompt_text(p) for p in prompts]
        for i, text in enumerate(texts):
            by_key[f"trl:{step}:{hashlib.sha256(text.encode()).hexdigest()[:32]}"].append(i)

        def ask(key: str, idx: list[int]) -> list[float]:
            body = {"group_key": key, "group_size": self.group_size,
                    "samples": [{"prompt": texts[i], "response": completion_text(completions[i]),
                                 "label": constraints[i]} for i in idx]}
            return self.client.post("/v1/rewards", body)["rewards"]

        out = [0.0] * len(completions)
        with ThreadPoolExecutor(max(1, len(by_key))) as pool:  # every group of the slice at once
            answers = list(pool.map(lambda kv: ask(*kv), by_key.items()))
        for (key, idx), rewards in zip(by_key.items(), answers):
            for i, r in zip(idx, rewards):
                out[i] = float(r)
        return out
