"""Policy GRPO with a judge's writing reward and RLMR's dynamic mixed reward.

How this departs from plain TRL GRPO: rewards are computed for *whole groups* after gathering
across processes (:class:`~quillrl.scoring.group_rewards.GroupRewards`: one batched judge call
for every comparison of the batch, constraint verification, per-group mixing). Everything else
— generation (transformers or vLLM), advantages ``(r - mean_group(r)) / std``, the clipped loss,
KL, LoRA, accelerate/DeepSpeed/FSDP — is TRL's, unchanged.

The one override is the narrowest hook that sees every process's completions before the
advantages: ``_calculate_rewards`` (private in TRL, hence the pin to the TRL minor version in
pyproject). No state passes between methods: the violators' advantages are read at log time
from TRL's own record of the last generation batch (``_logs["advantages"]`` beside the
``constraint_pass`` reward column, both gathered over processes). The private names we depend
on are listed in docs/design.md, "The policy trainer and TRL", as an upgrade checklist.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

import numpy as np
import torch
from accelerate.utils import gather_object
from trl import GRPOTrainer

from ..scoring.group_rewards import GroupRewards, task_constraints
from ..scoring.reward_funcs import completion_text, prompt_text


def _named(name: str):
    """A reward-column callable TRL can name; MixedRewardGRPOTrainer fills the column itself."""

    def column(prompts, completions, **kwargs):  # pragma: no cover - never called by our trainer
        raise RuntimeError(f"the '{name}' column is computed by MixedRewardGRPOTrainer on whole groups")

    column.__name__ = name
    return column


# Reward columns: TRL adds them with these weights, so only the mixed reward drives advantages;
# writing and constraint_pass are logged (rewards/<name>/mean) for the metrics file.
REWARD_COLUMNS = ("mixed", "writing", "constraint_pass")
REWARD_WEIGHTS = [1.0, 0.0, 0.0]


class MixedRewardGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose reward is RLMR-mixed writing quality and constraint passes.

    Pass ``group_rewards`` (a :class:`GroupRewards`); ``reward_funcs`` and ``reward_weights``
    are set here. The dataset needs ``prompt`` and ``constraints`` columns (``reference`` too
    for the reference strategy; ``principle``, optional, conditions the judge on the task's
    principle).
    """

    def __init__(self, *args: Any, group_rewards: GroupRewards, samples_per_step: int = 4, **kwargs: Any):
        kwargs["reward_funcs"] = [_named(n) for n in REWARD_COLUMNS]
        # a copy: the caller's GRPOConfig stays as it was given
        kwargs["args"] = copy.copy(kwargs["args"])
        kwargs["args"].reward_weights = REWARD_WEIGHTS
        super().__init__(*args, **kwargs)
        self.group_rewards = group_rewards
        self.samples_per_step = samples_per_step
        self._step_stats: dict[str, list[float]] = defaultdict(list)
        self._samples: list[dict] = []

    # -- the hook: rewards for whole, gathered groups -------------------------------------------
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        training = self.model.training  # else evaluating, with TRL's eval group size
        group_size = self.num_generations if training else self.num_generations_eval
        # Gather texts from every process: groups can straddle processes (docs/design.md, "Scale").
        all_prompts = gather_object([prompt_text(p) for p in prompts])
        all_texts = gather_object([completion_text(c) for c in completions])
        # gathered as the dataset's JSON strings (cheap to send), then validated once here
        all_constraints = [task_constraints(c) for c in gather_object([x.get("constraints") for x in inputs])]
        all_refs = gather_object([x.get("reference") or None for x in inputs])
        all_principles = gather_object([x.get("principle") or None for x in inputs])
        rank, world = self.accelerator.process_index, self.accelerator.num_processes
        batch = self.group_rewards.compute(all_prompts, all_texts, all_constraints, group_size,
                                           step=self.state.global_step, references=all_refs,
                                           principles=all_principles,
                                           shard=(rank, world), gather=gather_object)
        columns = np.stack([batch.rewards, batch.writing, batch.passed.astype(np.float64)], axis=1)
        if training:
            self._step_stats["judge_invalid_rate"].append(batch.judge_invalid_rate)
            self._step_stats["writing_missing_rate"].append(float(batch.writing_missing.mean()))
            self._step_stats["constraint_unknown"].append(float(batch.constraint_unknown))
            if batch.lambdas:
                self._step_stats["rlmr_lambda_mean"].append(float(np.mean(batch.lambdas)))
            if self.accelerator.is_main_process and len(self._samples) < self.samples_per_step:
                for i in range(min(self.samples_per_step - len(self._samples), len(all_texts))):
                    self._samples.append({
                        "prompt": all_prompts[i], "completion": all_texts[i],
                        "writing": float(batch.writing[i]), "passed": bool(batch.passed[i]),
                        "reward": float(batch.rewards[i]), "failed": batch.reasons[i]})
        return torch.tensor(columns, dtype=torch.float32, device=self.accelerator.device)

    def _last_batch_violator_advantage(self) -> float | None:
        """:func:`violator_max_advantage` of TRL's last generation batch, from TRL's own record
        of it: the advantages it computed and our ``constraint_pass`` column, both gathered."""
        advantages = np.asarray(self._logs["advantages"], dtype=np.float64)
        passed = np.asarray(self._logs["rewards"]["constraint_pass"], dtype=np.float64)
        if advantages.size == 0 or advantages.size != passed.size or advantages.size % self.num_generations:
            return None
        return violator_max_advantage(advantages, passed > 0.5, self.num_generations)

    # -- what the callbacks read -------------------------------------------------------------------
    def step_metrics(self) -> dict:
        """This step's own metrics (means over its reward calls), then reset; plus the largest
        advantage of a violator in a mixed group of the last generation batch (None: none)."""
        out = {}
        for key, values in self._step_stats.items():
            finite = [v for v in values if np.isfinite(v)]
            out[key] = float(np.mean(finite)) if finite else None
        self._step_stats.clear()
        out["violator_max_advantage"] = self._last_batch_violator_advantage()
        return out

    def take_samples(self) -> list[dict]:
        rows, self._samples = self._samples, []
        return rows


def violator_max_advantage(advantages: np.ndarray, passed: np.ndarray, group_size: int) -> float | None:
    """The largest advantage of any violating sample in a *mixed* group (0 < k < n violators);
    None when no group is mixed. Under RLMR it is negative by construction.

    >>> violator_max_advantage(np.array([1.0, -0.5, -0.5, 0.2, -0.2, 0.0]),
    ...                        np.array([True, False, False, False, False, False]), 3)
    -0.5
    """
    adv = advantages.reshape(-1, group_size)
    bad = ~passed.reshape(-1, group_size)
    mixed = bad.any(axis=1) & ~bad.all(axis=1)
    if not mixed.any():
        return None
    return float(adv[mixed][bad[mixed]].max())


# TRL log key -> quillrl metric name (both are written to metrics.jsonl)
METRIC_NAMES = {
    "reward": "reward_mean",
    "rewards/writing/mean": "writing_reward_mean",
    "rewards/constraint_pass/mean": "constraint_pass_rate",
    "completions/mean_length": "completion_length_mean",
}
