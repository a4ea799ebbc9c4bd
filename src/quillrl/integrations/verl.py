"""verl (0.9): ``QuillRewardManager`` (the reward manager) and ``compute_score`` (the reward function).

verl's reward loop (``verl/experimental/reward_loop/``, v0.9.1) asks for one sample's reward at a
time: a ``RewardLoopWorker`` calls its reward manager's ``run_single(data)`` with a one-sample
``DataProto``, and the ``naive`` manager awaits
``compute_score(data_source=, solution_str=, ground_truth=, extra_info=)`` (``reward_kwargs`` from
``reward.custom_reward_function`` merged in by ``verl/trainer/ppo/reward.py``). quillrl's group
rewards (pairwise judging within a GRPO group, RLMR's per-group λ) run in ``serve-reward``, which
holds the samples of a group until it is whole; so every request must name its group exactly.

* ``QuillRewardManager`` (load it with ``reward.reward_manager.source=importlib``,
  ``module.path=pkg://quillrl.integrations.verl``, ``name=QuillRewardManager``) is verl's naive
  manager plus the group identity it alone can see: verl's ``uid`` (the true GRPO group: the
  trainer draws one per prompt before repeating it ``rollout.n`` times), the sample's slot (its
  position in the generation batch, ``priority``, modulo the group size) and the group size
  (``rollout.n``, or ``val_kwargs.n`` for validation rows). It hands them to ``compute_score`` in
  ``extra_info["quillrl_group"]``, with the prompt from verl's ``raw_prompt`` (chat messages).
* ``compute_score`` alone (verl's ``naive`` manager) has no ``uid``: its group key is
  ``verl:<data_source>:<extra_info.index>:<digest of prompt and label>``, so two different prompts
  that share an index (two train files each indexed from 0) never share a group; the same prompt
  twice in one batch still would (use the manager).

Validation: verl's reward workers are not told that a batch is validation, so a row counts as
validation when ``data.meta_info["validate"]`` says so (where verl forwards it) or when its
``extra_info["split"]`` is one of ``val_splits`` (verl's preprocessing scripts write ``"test"``).
With ``val_kwargs.n == 1`` the group size sent is 1, which the server scores at once by its
singleton rule. Padding copies that verl appends to a validation batch get positions past the
batch, hence a group id of their own: they never complete (or join) a real group, and verl drops
their rewards when it unpads.

What comes back: ``{"score": mixed reward, "writing", "passed", "lambda", "writing_missing",
"partial", "singleton"}`` (floats; verl logs them as ``reward_extra_info``; mask samples with
``partial == 1`` if a timed-out group should not train). Since ``score`` already is the RLMR mix,
verl's own GRPO advantage gives every violator a negative advantage: no custom estimator.

Per-sample modes need no server: ``reward_type="constraints"`` (1.0 if every constraint of
``ground_truth`` passes) or ``reward_type="scalar"`` (a Bradley-Terry model at ``scalar_rm_path``).

Imports are absolute: verl loads a ``reward.custom_reward_function.path`` that is a file path as
an anonymous module, where a relative import fails.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from typing import Any

from quillrl.integrations.client import RewardClient, result_fields

VAL_SPLITS = ("test", "val", "valid", "validation", "eval")


async def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None,
                        *, server_url: str | None = None, group_size: int | None = None,
                        reward_type: str = "group", scalar_rm_path: str | None = None,
                        token_env: str | None = None, timeout: float = 900.0, **_: Any) -> dict:
    """One sample's reward for verl (see the module docstring for the modes)."""
    extra_info = dict(extra_info or {})
    prompt = sample_prompt(extra_info)
    if reward_type == "constraints":
        score = (await asyncio.to_thread(_constraint_reward(), [""], [solution_str],
                                         constraints=[_constraints(ground_truth)]))[0]
        return {"score": 0.0 if score is None else score, "passed": float(score == 1.0)}
    if reward_type == "scalar":
        if not scalar_rm_path:
            raise ValueError("reward_type='scalar' needs scalar_rm_path=<reward model directory>")
        score = (await asyncio.to_thread(_scalar_reward(scalar_rm_path), [prompt or ""], [solution_str]))[0]
        return {"score": 0.0 if score is None else score}
    if reward_type != "group":
        raise ValueError(f"reward_type must be 'group', 'constraints' or 'scalar', got {reward_type!r}")
    if not server_url:
        raise ValueError("group rewards need server_url (reward_kwargs.server_url) of `quillrl serve-reward`")
    group = extra_info.get("quillrl_group")  # set by QuillRewardManager
    if group:
        group_id, attempt, slot, size = group["group_id"], group["attempt"], group["slot"], group["group_size"]
    else:
        if "index" not in extra_info:
            raise ValueError("extra_info has no 'index' (verl's preprocessing puts the row index there) and no "
                             "quillrl_group: use reward.reward_manager QuillRewardManager (docs/verl.md)")
        group_id = f"verl:{data_source}:{extra_info['index']}:{_digest(prompt, ground_truth)}"
        attempt, slot, size = 0, None, group_size
    sample: dict[str, Any] = {"prompt": prompt, "response": solution_str, "label": ground_truth}
    if slot is not None:
        sample["slot"] = slot
    # "group_key" is the alias servers before the group-identity protocol read; both carry the id
    body = {"group_id": group_id, "group_key": group_id, "attempt": attempt, "group_size": size,
            "samples": [sample]}
    result = (await _client(server_url, token_env, timeout).apost("/v1/rewards", body))["results"][0]
    return {"score": float(result["reward"]), **result_fields(result),
            "singleton": float(bool(result.get("singleton", False)))}


def sample_prompt(extra_info: dict) -> str | None:
    """The writing prompt: the last user turn of verl's ``raw_prompt`` (chat messages, which verl's
    agent loop adds to ``extra_info``), else a string ``extra_info["prompt"]``, else None (the
    server then takes it from the label)."""
    from quillrl.scoring.reward_funcs import prompt_text

    raw = extra_info.get("raw_prompt")
    if raw is not None and not isinstance(raw, str):
        text = prompt_text([dict(m) for m in raw])
        if text:
            return text
    prompt = raw if isinstance(raw, str) else extra_info.get("prompt")
    return prompt if isinstance(prompt, str) and prompt else None


def group_identity(non_tensor: dict, meta_info: dict, group_size: int, val_group_size: int,
                   val_splits: tuple[str, ...] = VAL_SPLITS) -> dict:
    """The group one verl sample belongs to, from the fields of its ``DataProto`` row.

    ``uid`` is the GRPO group (``compute_grpo_outcome_advantage`` normalises within it).
    ``priority`` is the sample's position in the generation batch (verl's ``AgentLoopManager``
    numbers it before dispatch; the n samples of a uid are consecutive, ``repeat(interleave=True)``),
    so ``priority % n`` is the slot and ``priority // n`` the block: the block is part of the id,
    so a padding copy (same uid, position past the batch) is a group of its own.

    >>> group_identity({"uid": "u", "priority": 9, "extra_info": {"split": "train"}}, {}, 4, 1)
    {'group_id': 'verl:u:2', 'attempt': 0, 'slot': 1, 'group_size': 4, 'validate': False}
    >>> group_identity({"uid": "u", "priority": 9, "extra_info": {"split": "test"}}, {}, 4, 1)["group_size"]
    1
    """
    extra = non_tensor.get("extra_info") or {}
    split = str(extra.get("split", "")).lower() if isinstance(extra, dict) else ""
    validate = bool(meta_info.get("validate", False)) or split in val_splits
    size = int(val_group_size if validate else group_size)
    uid = non_tensor.get("uid")
    priority = non_tensor.get("priority")
    slot = block = None
    if priority is not None:
        slot, block = int(priority) % size, int(priority) // size
    if uid is None:
        raise ValueError("the sample has no 'uid': verl's trainer sets it for every GRPO group")
    group_id = f"verl:{uid}" if block is None else f"verl:{uid}:{block}"
    return {"group_id": group_id, "attempt": 0, "slot": slot, "group_size": size, "validate": validate}


def _manager_class() -> type:
    """``QuillRewardManager``, built on first use so that this module imports without verl."""
    import numpy as np
    from verl.experimental.reward_loop.reward_manager.naive import NaiveRewardManager

    class QuillRewardManager(NaiveRewardManager):
        """verl's naive reward manager that tells ``compute_score`` its sample's GRPO group."""

        def __init__(self, config, tokenizer, compute_score, reward_router_address=None,
                     reward_model_tokenizer=None, **kwargs):
            custom = config.reward.get("custom_reward_function") or {}
            if not custom.get("path"):
                raise ValueError("QuillRewardManager needs reward.custom_reward_function.path="
                                 "pkg://quillrl.integrations.verl and .name=compute_score (docs/verl.md)")
            super().__init__(config, tokenizer, compute_score, reward_router_address, reward_model_tokenizer)
            rollout = config.actor_rollout_ref.rollout
            self.group_size = int(rollout.n)
            self.val_group_size = int(rollout.val_kwargs.n)
            splits = (custom.get("reward_kwargs") or {}).get("val_splits")
            self.val_splits = tuple(str(s).lower() for s in splits) if splits is not None else VAL_SPLITS

        async def run_single(self, data):
            data = data[-1:]  # the naive manager scores the last sequence of a multi-sequence sample
            row = {key: value[0] for key, value in data.non_tensor_batch.items()}
            extra = dict(row.get("extra_info") or {})  # a copy: verl shares one dict among a uid's repeats
            extra["quillrl_group"] = group_identity(row, data.meta_info or {}, self.group_size,
                                                    self.val_group_size, self.val_splits)
            if row.get("raw_prompt") is not None:
                extra.setdefault("raw_prompt", list(row["raw_prompt"]))
            column = np.empty(1, dtype=object)
            column[0] = extra
            data.non_tensor_batch["extra_info"] = column
            return await super().run_single(data)

    return QuillRewardManager


def __getattr__(name: str) -> Any:  # PEP 562: verl's load_extern_object does getattr(module, name)
    if name == "QuillRewardManager":
        cls = globals()[name] = _manager_class()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _digest(prompt: str | None, label: Any) -> str:
    text = json.dumps([prompt, label], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _constraints(ground_truth: Any) -> Any:
    """The constraints in a label: a JSON list, or an object with a ``constraints`` list."""
    value = json.loads(ground_truth) if isinstance(ground_truth, str) and ground_truth.strip() else ground_truth
    return value.get("constraints", []) if isinstance(value, dict) else (value or [])


@functools.lru_cache(maxsize=None)
def _constraint_reward():
    from quillrl.scoring.reward_funcs import ConstraintPassReward
    return ConstraintPassReward()


@functools.lru_cache(maxsize=4)
def _scalar_reward(path: str):
    from quillrl.scoring.reward_funcs import ScalarRMReward
    return ScalarRMReward(path)


@functools.lru_cache(maxsize=16)
def _client(url: str, token_env: str | None, timeout: float) -> RewardClient:
    return RewardClient(url, token_env=token_env, timeout=timeout)
