"""TRL reward functions that give quillrl's whole-group rewards.

* :class:`RemoteGroupReward`, for ``GRPOTrainer``: asks ``serve-reward`` for mixed rewards;
* :class:`WholeGroupReward`, for TRL's experimental ``AsyncGRPOTrainer``, whose rollout worker
  (``trl/experimental/async_grpo/async_rollout_worker.py``, ``_score_group``, TRL 1.16) hands each
  reward function one whole group: it is mixed at once, in process or by a server, with no barrier.

``RemoteGroupReward``:

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

ASYNC_GRPO_SOURCE = "trl/experimental/async_grpo/async_rollout_worker.py (_score_group, TRL 1.16)"


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


class WholeGroupReward:
    """``f(prompts, completions, constraints=None, reference=None, **_) -> list[float]`` for one
    whole group, as TRL's ``AsyncGRPOTrainer`` calls reward functions (one call per group; its
    dataset's other columns, e.g. ``constraints``, arrive repeated once per completion).

    With ``url``, the group goes to ``serve-reward`` as one request without a group id (scored at
    once); otherwise it is scored here by :class:`~quillrl.scoring.GroupRewards`,
    built lazily from the ``reward`` and ``mix`` config sections (the keys of ``train policy``'s
    ``reward:`` and ``mix:``), so the object stays picklable for TRL's spawned rollout worker.
    The advantage TRL then computes (``(r - mean) / (std + 1e-8)`` over the group) gives every
    constraint violator a negative one: the mixed reward already carries RLMR's penalty.
    """

    __name__ = "quillrl_group_reward"

    def __init__(self, url: str | None = None, token_env: str | None = None, timeout: float = 900.0,
                 reward: dict | None = None, mix: dict | None = None, seed: int = 0):
        if url is not None and (reward is not None or mix is not None):
            from ..errors import ConfigError

            raise ConfigError("WholeGroupReward: give url (a serve-reward does the scoring) or the "
                              "reward/mix sections (scored here), not both")
        self.url, self.token_env, self.timeout = url, token_env, timeout
        self.reward, self.mix, self.seed = dict(reward or {}), dict(mix or {}), seed
        self._scorer: Any = None
        self._calls = 0
        if url is None:  # validate now, in the trainer's process, not in the rollout worker
            from ..scoring.config import MixSection, RewardSection

            RewardSection.model_validate(self.reward)
            MixSection.model_validate(self.mix)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_scorer": None}

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], constraints: Sequence[Any] | None = None,
                 reference: Sequence[Any] | None = None, **_: Any) -> list[float]:
        texts = [completion_text(c) for c in completions]
        prompt_texts = [prompt_text(p) for p in prompts]
        constraints = list(constraints) if constraints is not None else [None] * len(texts)
        references = list(reference) if reference is not None else [None] * len(texts)
        if self.url is not None:
            client = RewardClient(self.url, token_env=self.token_env, timeout=self.timeout)
            body = {"samples": [{"prompt": p, "response": t, "label": c, "reference": r}
                                for p, t, c, r in zip(prompt_texts, texts, constraints, references)]}
            return [float(r) for r in client.post("/v1/rewards", body)["rewards"]]
        step, self._calls = self._calls, self._calls + 1
        batch = self._group_rewards().compute(prompt_texts, texts, constraints, group_size=len(texts),
                                              step=step, references=references)
        return [float(r) for r in batch.rewards]

    def _group_rewards(self) -> Any:
        if self._scorer is None:
            from ..scoring.build import build_group_rewards
            from ..scoring.config import MixSection, RewardSection

            self._scorer = build_group_rewards(RewardSection.model_validate(self.reward),
                                               MixSection.model_validate(self.mix), self.seed)
        return self._scorer
