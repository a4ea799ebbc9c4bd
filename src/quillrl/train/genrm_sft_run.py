"""``quillrl train genrm-sft``: supervised fine-tuning of a GenRM on distilled judgments (RLCS stage 1).

TRL's ``SFTTrainer``, unchanged, on ``quillrl distill`` output (chat ``messages``: the judge's
system and user turns, then the teacher's reply). The loss is on the assistant turn only, so the
student learns to *write* judgments, not to reproduce stories. TRL 1.16 offers two ways:

* ``assistant_only_loss``: needs a chat template with ``{% generation %}`` markers. TRL patches
  the templates it knows (Qwen, Llama 3, Gemma, Phi...); others it refuses, SmolLM2's among them.
* ``completion_only_loss`` on a conversational *prompt/completion* split: ``prompt`` = every
  turn but the last, ``completion`` = the assistant turn. TRL renders the prompt with
  ``add_generation_prompt=True``, exactly the text :class:`~quillrl.judges.GenRMJudge` sends,
  and trains on the rest (the reply and its end-of-turn token). Works with any chat template.

``loss_on: auto`` takes the first when the template has markers or TRL can patch it, else the
second. Examples longer than ``max_length`` tokens are dropped and counted, never truncated:
TRL cuts from the right, which would cut the verdict, the one part the judge must learn.
The output ``final/`` is a LoRA adapter (or a full model): ``genrm:local:<output_dir>/final``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..config import StageConfig
from ..errors import ConfigError
from ..models import DEFAULT_MODEL
from .common import TrainRunConfig, output_dir_field, trl_args, trl_field

LossOn = Literal["auto", "assistant_only", "completion_only"]


class SFTSection(StageConfig):
    """The SFT settings most runs change; anything else goes in ``trl:``."""

    learning_rate: float = Field(2e-4, gt=0, description="optimizer step size")
    batch_size: int = Field(2, ge=1, description="examples per device per optimizer micro-step")
    gradient_accumulation_steps: int = Field(1, ge=1, description="micro-steps per optimizer step")
    max_length: int = Field(2048, ge=16, description="longest example in tokens; longer ones are dropped")
    loss_on: LossOn = Field("auto", description="assistant-turn loss: auto, assistant_only (template "
                            "markers) or completion_only (prompt/completion split)")


class GenRMSFTConfig(TrainRunConfig):
    """``quillrl train genrm-sft`` config (YAML). Paths are relative to the working directory."""

    model: str = Field(DEFAULT_MODEL, description="student: embedded name, model directory or adapter")
    data: str = Field(..., description="SFT examples JSONL written by `quillrl distill`")
    max_examples: int | None = Field(None, ge=1, description="use only the first N examples (after shuffling)")
    seed: int = Field(0, description="seed for data order and initialisation")
    output_dir: str = output_dir_field("runs/genrm_sft")
    sft: SFTSection = SFTSection()
    trl: dict = trl_field("SFTConfig")


def loss_mode(tokenizer, loss_on: LossOn = "auto") -> Literal["assistant_only", "completion_only"]:
    """Which assistant-only loss this tokenizer's chat template allows (see the module docstring)."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    if loss_on == "completion_only":
        return "completion_only"
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise ConfigError("the model's tokenizer has no chat template; a GenRM is prompted in chat form")
    if has_generation_markers(template):
        return "assistant_only"
    try:
        get_training_chat_template(tokenizer)
        return "assistant_only"
    except ValueError:
        if loss_on == "assistant_only":
            raise ConfigError("sft.loss_on=assistant_only needs a chat template with {% generation %} "
                              "markers, and TRL cannot patch this one; use loss_on: auto or "
                              "completion_only") from None
        return "completion_only"


def sft_dataset(config: GenRMSFTConfig, tokenizer, mode: str):
    """The distilled examples as a TRL dataset in the form ``mode`` needs; plus counts."""
    from datasets import Dataset

    from ..data import read_sft_examples
    from ..judges.template import REASONING_PREFILL

    rows = read_sft_examples(config.data, REASONING_PREFILL)
    random.Random(config.seed).shuffle(rows)
    if config.max_examples:
        rows = rows[: config.max_examples]
    kept, too_long = [], 0
    for row in rows:
        text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
        if len(tokenizer(text, add_special_tokens=False)["input_ids"]) > config.sft.max_length:
            too_long += 1
            continue
        messages = row["messages"]
        kept.append({"messages": messages} if mode == "assistant_only"
                    else {"prompt": messages[:-1], "completion": messages[-1:]})
    if not kept:
        raise ConfigError(f"{config.data}: no example fits sft.max_length={config.sft.max_length} "
                          f"tokens ({too_long} longer); raise it")
    return Dataset.from_list(kept), {"examples": len(kept), "dropped_too_long": too_long, "loss_mode": mode}


def build_trainer(config: GenRMSFTConfig, output_dir: Path):
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from .callbacks import CpuThreads, MetricsWriter, RichProgress
    from .lifecycle import load_trainable

    model, tokenizer, peft_config = load_trainable(config.model, config.lora)
    mode = loss_mode(tokenizer, config.sft.loss_on)
    dataset, counts = sft_dataset(config, tokenizer, mode)
    s = config.sft
    args = trl_args(SFTConfig, {
        "output_dir": str(output_dir), "max_steps": config.max_steps, "save_steps": config.save_steps,
        "seed": config.seed, "learning_rate": s.learning_rate, "per_device_train_batch_size": s.batch_size,
        "gradient_accumulation_steps": s.gradient_accumulation_steps, "max_length": s.max_length,
        "assistant_only_loss": mode == "assistant_only", "completion_only_loss": mode == "completion_only",
        "packing": False,
    }, config.trl)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=peft_config)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(MetricsWriter(output_dir / "metrics.jsonl"))
    trainer.add_callback(CpuThreads())
    trainer.add_callback(RichProgress({"loss": "loss", "mean_token_accuracy": "token acc"}))
    return trainer, counts


def train_genrm_sft(config: GenRMSFTConfig, resume: bool = False) -> dict:
    """Train, write the report, and return the JSON summary."""
    from .lifecycle import run_training

    return run_training(config, resume, build_trainer, title="GenRM SFT (distilled judgments)",
                        judge_spec="genrm:local:{final}", summary_keys=("loss", "mean_token_accuracy"))
