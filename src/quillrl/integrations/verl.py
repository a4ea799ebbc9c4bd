"""verl: ``compute_score`` for ``reward.custom_reward_function`` (verl 0.9).

verl's reward loop (``verl/experimental/reward_loop/reward_manager/naive.py``, v0.9.1) calls
``await compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)`` once
per sample (async functions are awaited on its loop; ``reward_kwargs`` from the config are merged
in by ``verl/trainer/ppo/reward.py``) and reads a float or a dict with ``"score"``. No reward
manager sees a GRPO group, so:

* per-sample rewards run here, in process: ``reward_type="constraints"`` (1.0 if the response
  passes every constraint of ``ground_truth``, else 0.0) or ``reward_type="scalar"`` (a
  Bradley-Terry reward model at ``scalar_rm_path``);
* group rewards (pairwise GenRM judging, RLMR mixing) go to ``serve-reward`` at ``server_url``
  with the group key ``verl:<data_source>:<extra_info[index]>`` and ``group_size`` (set it to
  ``actor_rollout_ref.rollout.n``): every reward worker joins one barrier on the server.

``ground_truth`` is what the server reads as the label: a task id (server with
``constraints.source: tasks``) or a JSON list/object of constraints (``source: label``; include
``"prompt"`` in it, since verl passes no prompt to ``compute_score``). The returned dict's
numeric fields (``writing``, ``passed``, ``lambda``...) land in verl's ``reward_extra_info``.

Because the mixed reward is what verl receives, its GRPO advantage (``compute_grpo_outcome_advantage``:
subtract the group mean, divide by the std) already gives every violator a negative advantage;
no custom advantage estimator is needed (tests/test_integrations.py shows it).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from .client import RewardClient, result_fields


async def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None,
                        *, server_url: str | None = None, group_size: int | None = None,
                        reward_type: str = "group", scalar_rm_path: str | None = None,
                        token_env: str | None = None, timeout: float = 900.0, **_: Any) -> dict:
    """One sample's reward for verl (see the module docstring for the modes)."""
    extra_info = dict(extra_info or {})
    if reward_type == "constraints":
        score = (await asyncio.to_thread(_constraint_reward(), [""], [solution_str],
                                         constraints=[_constraints(ground_truth)]))[0]
        return {"score": 0.0 if score is None else score, "passed": float(score == 1.0)}
    if reward_type == "scalar":
        if not scalar_rm_path:
            raise ValueError("reward_type='scalar' needs scalar_rm_path=<reward model directory>")
        prompt = str(extra_info.get("prompt") or "")
        score = (await asyncio.to_thread(_scalar_reward(scalar_rm_path), [prompt], [solution_str]))[0]
        return {"score": 0.0 if score is None else score}
    if reward_type != "group":
        raise ValueError(f"reward_type must be 'group', 'constraints' or 'scalar', got {reward_type!r}")
    if not server_url:
        raise ValueError("group rewards need server_url (reward_kwargs.server_url) of `quillrl serve-reward`")
    if "index" not in extra_info:
        raise ValueError("extra_info has no 'index': verl's data preprocessing puts the row index there, "
                         "and it is the group key (all rollout.n samples of a prompt share it)")
    body = {"samples": [{"prompt": extra_info.get("prompt") if isinstance(extra_info.get("prompt"), str) else None,
                         "response": solution_str, "label": ground_truth}],
            "group_key": f"verl:{data_source}:{extra_info['index']}", "group_size": group_size}
    result = (await _client(server_url, token_env, timeout).apost("/v1/rewards", body))["results"][0]
    return {"score": float(result["reward"]), **result_fields(result)}


def _constraints(ground_truth: Any) -> Any:
    """The constraints in a label: a JSON list, or an object with a ``constraints`` list."""
    import json

    value = json.loads(ground_truth) if isinstance(ground_truth, str) and ground_truth.strip() else ground_truth
    return value.get("constraints", []) if isinstance(value, dict) else (value or [])


@functools.lru_cache(maxsize=None)
def _constraint_reward():
    from ..scoring.reward_funcs import ConstraintPassReward

    return ConstraintPassReward()


@functools.lru_cache(maxsize=4)
def _scalar_reward(path: str):
    from ..scoring.reward_funcs import ScalarRMReward

    return ScalarRMReward(path)


@functools.lru_cache(maxsize=16)
def _client(url: str, token_env: str | None, timeout: float) -> RewardClient:
    return RewardClient(url, token_env=token_env, timeout=timeout)
