"""``quillrl train genrm-grpo``: the config, the labelled-pair prompts, and a run to its report.

Reads top to bottom: config → pairs as judge prompts (A/B order by the package's placement coin) →
policy (usually ``genrm-sft``'s adapter) → :class:`~quillrl.train.genrm_grpo_trainer.GenRMGRPOTrainer`
→ train (resuming if asked) → report. ``shaping.floor: 1`` is the unshaped ±1 baseline.
Output directory as for ``train policy``; ``final/`` loads as ``genrm:local:<output_dir>/final``.
"""

from __future__ import annotations

import random
from pathlib import Path

from pydantic import Field

from ..config import StageConfig
from ..errors import ConfigError
from ..models import DEFAULT_MODEL
from .common import TrainRunConfig, output_dir_field, trl_field
from .policy_run import GRPOSection, grpo_trl_args


class ShapingSection(StageConfig):
    """RLCS's entropy-based reward shaping (docs/design.md); ``floor: 1`` turns it off."""

    floor: float = Field(0.2, gt=0, le=1, description="reward of a right verdict at H=0; 1 = unshaped ±1")
    format_penalty: float = Field(0.5, ge=0, description="an invalid judgment earns -1 - format_penalty")
    confident_below: float = Field(0.5, gt=0, le=1, description="H threshold for confident_correct_share")
    force_verdict: bool = Field(False, description="close an analysis that never reached its verdict "
                                "and score the verdict read there (docs/design.md, 'Forced verdict')")
    forced_penalty: float = Field(0.25, ge=0, description="a forced verdict earns its shaped reward "
                                  "minus this, so finishing unaided pays more")


class JudgeGRPOSection(GRPOSection):
    """The policy's GRPO settings with a judge's defaults: a judgment (five dimensions, then the
    verdict) needs more room than a story's default budget, and a smaller step."""

    max_completion_length: int = Field(384, ge=1, description="max new tokens per judgment")
    learning_rate: float = Field(1e-5, gt=0, description="optimizer step size")


class GenRMGRPOConfig(TrainRunConfig):
    """``quillrl train genrm-grpo`` config (YAML). Paths are relative to the working directory."""

    model: str = Field(DEFAULT_MODEL, description="judge to train: embedded name, model directory, or "
                       "an adapter (genrm-sft's final/), which is trained further")
    pairs: str = Field(..., description="labelled preference pairs JSONL (id, prompt, chosen, rejected)")
    max_pairs: int | None = Field(None, ge=1, description="use only the first N pairs (after shuffling)")
    max_prompt_tokens: int | None = Field(None, ge=16, description="drop pairs whose judge prompt is longer "
                                          "(counted; TRL does not truncate prompts)")
    seed: int = Field(0, description="seed for data order, A/B order, sampling")
    output_dir: str = output_dir_field("runs/genrm_grpo")
    samples_per_step: int = Field(4, ge=0, description="judgments per step written to completions.jsonl")
    shaping: ShapingSection = ShapingSection()
    grpo: JudgeGRPOSection = JudgeGRPOSection()
    trl: dict = trl_field("GRPOConfig")


def judge_prompts(config: GenRMGRPOConfig, tokenizer):
    """Pairs as GRPO prompts: ``prompt`` (the judge's system and user turns, then the reasoning
    prefill as the assistant turn to continue), ``label`` (the
    slot letter of the human-preferred story) and ``pair_id``; plus counts."""
    from datasets import Dataset

    from ..backends.prompts import encode
    from ..data import read_pairs
    from ..judges.placement import first_slot
    from ..judges.template import as_conversation, judge_prompt

    pairs = list(read_pairs(config.pairs).records)
    rng = random.Random(config.seed)
    rng.shuffle(pairs)
    rows, too_long = [], 0
    for pair in pairs:
        if config.max_pairs and len(rows) == config.max_pairs:
            break
        # the same seeded coin as judging and evaluation: a pair's order depends on its id only
        chosen_first = first_slot(pair.id, config.seed) == "A"
        a, b = (pair.chosen, pair.rejected) if chosen_first else (pair.rejected, pair.chosen)
        prompt = judge_prompt(pair.prompt, a, b, "reasoning", pair.judge_principle())
        if config.max_prompt_tokens and len(encode(tokenizer, prompt)) > config.max_prompt_tokens:
            too_long += 1
            continue
        rows.append({"prompt": as_conversation(prompt), "label": "A" if chosen_first else "B",
                     "pair_id": pair.id})
    if not rows:
        raise ConfigError(f"{config.pairs}: no pair to train on ({too_long} longer than "
                          f"max_prompt_tokens={config.max_prompt_tokens})")
    share_a = sum(r["label"] == "A" for r in rows) / len(rows)
    return Dataset.from_list(rows), {"pairs": len(rows), "dropped_too_long": too_long,
                                     "label_a_share": round(share_a, 3)}


def build_trainer(config: GenRMGRPOConfig, output_dir: Path):
    from transformers import PrinterCallback

    from .callbacks import CpuThreads, MetricsWriter, RichProgress, SamplesTable
    from .genrm_grpo_trainer import METRIC_NAMES, GenRMGRPOTrainer
    from .lifecycle import load_trainable
    from .vllm_cpu_compat import live_weights_for_colocate

    args = grpo_trl_args(config, output_dir)
    model, tokenizer, peft_config = load_trainable(config.model, config.lora)
    dataset, counts = judge_prompts(config, tokenizer)
    with live_weights_for_colocate(args):  # TRL's colocated vLLM on CPU: train/vllm_cpu_compat.py
        trainer = GenRMGRPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                   peft_config=peft_config, shaping=config.shaping.model_dump(),
                                   samples_per_step=config.samples_per_step)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(MetricsWriter(output_dir / "metrics.jsonl", METRIC_NAMES))
    trainer.add_callback(SamplesTable(output_dir / "completions.jsonl", trainer.take_samples))
    trainer.add_callback(CpuThreads())
    trainer.add_callback(RichProgress({"reward": "reward", "accuracy": "acc", "invalid_rate": "invalid"}))
    return trainer, counts


def train_genrm_grpo(config: GenRMGRPOConfig, resume: bool = False) -> dict:
    """Train, write the report, and return the JSON summary."""
    from .lifecycle import run_training

    shaped = "unshaped ±1" if config.shaping.floor == 1 else f"entropy-shaped, floor {config.shaping.floor}"
    return run_training(config, resume, build_trainer, title=f"GenRM GRPO ({shaped})",
                        judge_spec="genrm:local:{final}",
                        summary_keys=("shaped_reward_mean", "shaped_reward_std", "accuracy", "invalid_rate",
                                      "entropy_correct", "entropy_wrong", "confident_correct_share",
                                      "entropy_spread", "group_reward_std", "group_reward_std_unshaped",
                                      "reward_unshaped"))
