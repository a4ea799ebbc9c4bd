"""``quillrl train policy``: the config, and a run from config to report.

Reads top to bottom: config → tasks → policy + judge → trainer → train (resuming if asked)
→ report. Output directory: checkpoints (``checkpoint-N``), ``metrics.jsonl`` (one line per
step), ``completions.jsonl`` (sampled completions with their rewards), ``config.yaml`` (the
resolved config), ``report.md`` with PNG plots, ``final/`` (the trained adapter or model).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..config import StageConfig
from ..errors import ConfigError
from ..models import DEFAULT_MODEL
from ..scoring.config import MixSection, RewardSection
from .common import TrainRunConfig, output_dir_field, trl_args, trl_field

BUNDLED_TASKS = "bundled:creative_tasks"


class GRPOSection(StageConfig):
    """The GRPO settings most runs change; anything else goes in ``trl:``."""

    num_generations: int = Field(4, ge=2, description="group size: completions per prompt")
    prompts_per_step: int = Field(2, ge=1, description="distinct prompts per optimizer step (per process)")
    max_completion_length: int = Field(128, ge=1, description="max new tokens per completion")
    learning_rate: float = Field(1e-4, gt=0, description="optimizer step size")
    beta: float = Field(0.0, ge=0, description="KL coefficient against the reference policy (0 = no ref model)")
    loss_type: str = Field("dapo", description="TRL loss_type: grpo, dapo, dr_grpo, bnpo, ...")
    temperature: float = Field(1.0, gt=0, description="sampling temperature for rollouts")
    scale_rewards: Literal["group", "batch", "none"] = Field("group", description="advantage std scaling")


def grpo_trl_args(config, output_dir: Path):
    """TRL's GRPOConfig from a config with ``grpo``, ``trl``, ``max_steps``, ``save_steps``, ``seed``."""
    from trl import GRPOConfig

    g = config.grpo
    return trl_args(GRPOConfig, {
        "output_dir": str(output_dir), "max_steps": config.max_steps, "save_steps": config.save_steps,
        "seed": config.seed, "num_generations": g.num_generations,
        "per_device_train_batch_size": g.num_generations * g.prompts_per_step,
        "max_completion_length": g.max_completion_length, "learning_rate": g.learning_rate,
        "beta": g.beta, "loss_type": g.loss_type, "temperature": g.temperature,
        "scale_rewards": g.scale_rewards,
    }, config.trl)


class PolicyConfig(TrainRunConfig):
    """``quillrl train policy`` config (YAML). Paths are relative to the working directory."""

    model: str = Field(DEFAULT_MODEL, description="policy: embedded name or local HF model directory")
    tasks: str = Field(BUNDLED_TASKS, description="writing tasks JSONL (id, prompt, constraints)")
    max_tasks: int | None = Field(None, ge=1, description="use only the first N tasks (after shuffling)")
    seed: int = Field(0, description="seed for data order, sampling, pivots")
    output_dir: str = output_dir_field("runs/policy")
    samples_per_step: int = Field(4, ge=0, description="completions per step written to completions.jsonl")
    reward: RewardSection = RewardSection()
    mix: MixSection = MixSection()
    grpo: GRPOSection = GRPOSection()
    trl: dict = trl_field("GRPOConfig")


def tasks_dataset(config: PolicyConfig):
    """Writing tasks as a TRL prompt dataset (conversational prompts; constraints as JSON; the
    task's rendered principle, "" for none, which the judge of its group is conditioned on)."""
    from datasets import Dataset

    from ..constraints import read_tasks
    from ..data import resolve_tasks_path

    tasks = list(read_tasks(resolve_tasks_path(config.tasks), skip_invalid=config.skip_invalid).records)
    random.Random(config.seed).shuffle(tasks)
    if config.max_tasks:
        tasks = tasks[: config.max_tasks]
    if not tasks:
        raise ConfigError(f"{config.tasks}: no tasks to train on")
    rows = [{"prompt": t.messages(), "task_id": t.id,
             "constraints": json.dumps([c.model_dump() for c in t.constraints]),
             "reference": t.reference or "", "principle": t.judge_principle() or ""} for t in tasks]
    return Dataset.from_list(rows)


def check_free_text(config: PolicyConfig) -> None:
    """Refuse, before any weights load, tasks with ``free_text`` constraints and no verifier:
    every such sample would be undecided, hence a violator, and RLMR would push the whole
    policy down for a constraint nobody checked (the rule evaluation refuses by too)."""
    from ..constraints import read_tasks, refuse_unjudged_free_text
    from ..data import resolve_tasks_path

    if config.reward.free_text_verifier is not None:
        return
    path = resolve_tasks_path(config.tasks)
    refuse_unjudged_free_text(read_tasks(path, skip_invalid=config.skip_invalid), None,
                              source=path, setting="reward.free_text_verifier")


def judges_with_policy_weights(config: PolicyConfig) -> bool:
    """True when the judge is ``genrm:local:<the policy's own model>`` and the policy trains a
    LoRA adapter: the judge then runs on the policy's base weights with the adapter disabled
    (:class:`~quillrl.backends.base_weights.BaseWeightsBackend`), not on a second copy."""
    spec = config.reward.judge_spec
    return (config.reward.share_policy_weights and config.lora.enabled and spec.kind == "genrm"
            and spec.backend_kind == "local" and (spec.target or DEFAULT_MODEL) == config.model)


def build_trainer(config: PolicyConfig, output_dir: Path):
    from transformers import PrinterCallback

    from ..models import load
    from .callbacks import CpuThreads, MetricsWriter, RichProgress, SamplesTable
    from ..scoring.build import build_group_rewards, judge_model_options
    from .policy_trainer import METRIC_NAMES, MixedRewardGRPOTrainer
    from .vllm_cpu_compat import live_weights_for_colocate

    args = grpo_trl_args(config, output_dir)
    shared = judges_with_policy_weights(config)
    group_rewards = build_group_rewards(config.reward, config.mix, config.seed, load_judge=not shared)
    model, tokenizer = load(config.model, trainable=True)
    # TRL builds its colocated vLLM engine here; on vLLM-CPU its weights must stay live for
    # TRL's weight sync (train/vllm_cpu_compat.py)
    with live_weights_for_colocate(args):
        trainer = MixedRewardGRPOTrainer(
            model=model, args=args, train_dataset=tasks_dataset(config), processing_class=tokenizer,
            peft_config=config.lora.peft_config(), group_rewards=group_rewards,
            samples_per_step=config.samples_per_step)
    if shared:  # the judge is the policy's base model: its weights, with the adapter disabled
        from ..backends.base_weights import BaseWeightsBackend
        from ..judges import GenRMJudge

        group_rewards.judge = GenRMJudge(BaseWeightsBackend(trainer.model, tokenizer),
                                         mode=config.reward.mode, swap=config.reward.swap,
                                         **judge_model_options(config.reward))
        group_rewards.judge.name = config.reward.judge
    trainer.remove_callback(PrinterCallback)  # our progress bar and metrics.jsonl replace the dict dumps
    # kl: TRL's KL to the reference policy, logged when beta > 0 (with beta 0 TRL loads no
    # reference model and measures none; the line then says kl: null rather than leave it out)
    trainer.add_callback(MetricsWriter(output_dir / "metrics.jsonl", METRIC_NAMES, trainer.step_metrics,
                                       always=("kl",)))
    trainer.add_callback(SamplesTable(output_dir / "completions.jsonl", trainer.take_samples))
    trainer.add_callback(CpuThreads())
    trainer.add_callback(RichProgress({"reward": "reward", "rewards/constraint_pass/mean": "pass"}))
    return trainer


def train_policy(config: PolicyConfig, resume: bool = False) -> dict:
    """Train, write the report, and return the JSON summary."""
    from .lifecycle import run_training

    def build(cfg: PolicyConfig, output_dir: Path):
        return build_trainer(cfg, output_dir), {}

    check_free_text(config)

    return run_training(config, resume, build, title="Policy GRPO (RLMR mixed reward)",
                        summary_keys=("reward_mean", "writing_reward_mean", "constraint_pass_rate",
                                      "violator_max_advantage", "completion_length_mean"))
