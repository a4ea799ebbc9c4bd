"""Scoring whole groups: the layer between the judges and everything that rewards a policy.

``train policy`` (TRL), ``serve-reward`` (verl, OpenRLHF, slime, NeMo Gym) and the engine
adapters all score through this package, so they cannot drift apart:

* :class:`GroupRewards` (:mod:`.group_rewards`): writing rewards from a judge for every group
  (pairwise strategies or a scalar judge), constraint passes, the RLMR mix;
* the TRL reward functions (:mod:`.reward_funcs`): ``ConstraintPassReward``, ``ScalarRMReward``,
  ``prompt_text``, ``completion_text``;
* the ``reward:`` and ``mix:`` config sections (:mod:`.config`), whose judge spec is parsed into
  a :class:`~quillrl.judges.JudgeSpec` when the config loads;
* :func:`build_group_rewards` (:mod:`.build`): those sections into a ready ``GroupRewards``.

Names load on first use, so the config sections come without the judges' imports.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# public name -> module that defines it (imported on first access)
_LAZY = {
    "GroupRewardBatch": ".group_rewards", "GroupRewards": ".group_rewards",
    "task_constraints": ".group_rewards",
    "ConstraintPassReward": ".reward_funcs", "ScalarRMReward": ".reward_funcs",
    "completion_text": ".reward_funcs", "prompt_text": ".reward_funcs",
    "MixSection": ".config", "RewardSection": ".config",
    "build_group_rewards": ".build",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
