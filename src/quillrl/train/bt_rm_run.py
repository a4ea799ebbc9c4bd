"""``quillrl train bt-rm``: a Bradley-Terry reward model on preference pairs (RLCS's baseline).

TRL's ``RewardTrainer``, unchanged: a one-output sequence-classification head on the base model
(LoRA or full), loss ``-log sigmoid(r_chosen - r_rejected)``. The only glue is the input text:
every response is rendered by :func:`~quillrl.judges.scalar.format_for_rm` and tokenized here,
the function and the call :class:`~quillrl.judges.ScalarRMJudge` scores with, so training and
judging read identical token ids. Pairs with either side over ``max_length`` tokens are
dropped and counted, or with ``long_pairs: truncate`` their long stories are cut from the back
(:func:`~quillrl.judges.scalar.rm_input_ids`: the prompt, the story's opening and the
template's closing tokens, where the score is read, are kept), counted too.

``final/`` is a full ``num_labels=1`` model directory, loadable as ``scalar:<output_dir>/final``.
With LoRA the adapter (and the trained score head, which PEFT keeps in ``modules_to_save``) is
merged into the base on save, because ``ScalarRMJudge`` loads a plain model directory; the
adapter itself stays in ``final_adapter/``. Merging reloads the saved adapter rather than
touching the live model, so it works the same after DeepSpeed/FSDP consolidated the save.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

from pydantic import Field

from ..config import StageConfig
from ..errors import ConfigError
from ..models import DEFAULT_MODEL
from ..judges.scalar import write_rm_settings
from .common import TrainRunConfig, output_dir_field, trl_args, trl_field


class BTSection(StageConfig):
    """The reward-model settings most runs change; anything else goes in ``trl:``."""

    learning_rate: float = Field(1e-4, gt=0, description="optimizer step size")
    batch_size: int = Field(4, ge=1, description="pairs per device per optimizer micro-step")
    gradient_accumulation_steps: int = Field(1, ge=1, description="micro-steps per optimizer step")
    max_length: int = Field(2048, ge=16, description="longest response in tokens (with prompt and template)")
    long_pairs: Literal["drop", "truncate"] = Field(
        "drop", description="a pair with a side over max_length: dropped (counted), or its long "
        "stories cut from the back, prompt and template kept (counted; judge with the same max_length)")
    center_rewards_coefficient: float | None = Field(
        None, ge=0, description="penalty on (r_chosen + r_rejected)^2, keeps rewards centred (TRL)")


class BTRMConfig(TrainRunConfig):
    """``quillrl train bt-rm`` config (YAML). Paths are relative to the working directory."""

    model: str = Field(DEFAULT_MODEL, description="base model: embedded name or model directory")
    pairs: str = Field(..., description="preference pairs JSONL (id, prompt, chosen, rejected)")
    max_pairs: int | None = Field(None, ge=1, description="use only the first N pairs (after shuffling)")
    seed: int = Field(0, description="seed for data order and the new head's initialisation")
    output_dir: str = output_dir_field("runs/bt_rm")
    bt: BTSection = BTSection()
    trl: dict = trl_field("RewardConfig")


def load_reward_model(name_or_path: str, seed: int):
    """A ``num_labels=1`` sequence classifier on a causal LM's weights, and its tokenizer."""
    import torch
    from transformers import AutoModelForSequenceClassification, set_seed
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    from ..models import load_tokenizer, resolve

    path = resolve(name_or_path)
    if (path / "adapter_config.json").exists():
        raise ConfigError(f"bt-rm: {name_or_path} is an adapter; start a reward model from a full model "
                          "directory (merge the adapter first)")
    tokenizer = load_tokenizer(path)
    set_seed(seed)  # the score head is new and random
    with suppress_seqcls_warning():  # "score.weight newly initialised" is the point, not a problem
        model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def preference_dataset(config: BTRMConfig, tokenizer):
    """Pairs as TRL's processed preference rows (``chosen_ids``, ``rejected_ids``); plus counts."""
    from datasets import Dataset

    from ..data import read_pairs
    from ..judges.scalar import rm_input_ids

    pairs = list(read_pairs(config.pairs).records)
    random.Random(config.seed).shuffle(pairs)
    if config.max_pairs:
        pairs = pairs[: config.max_pairs]

    limit = config.bt.max_length if config.bt.long_pairs == "truncate" else None
    rows, too_long, truncated = [], 0, 0
    for pair in pairs:
        (chosen, cut_c), (rejected, cut_r) = (rm_input_ids(tokenizer, pair.prompt, text, limit)
                                              for text in (pair.chosen, pair.rejected))
        if max(len(chosen), len(rejected)) > config.bt.max_length:
            too_long += 1
            continue
        truncated += cut_c or cut_r
        rows.append({"chosen_ids": chosen, "rejected_ids": rejected})
    if not rows:
        raise ConfigError(f"{config.pairs}: no pair fits bt.max_length={config.bt.max_length} tokens "
                          f"({too_long} longer); raise it or set bt.long_pairs: truncate")
    return Dataset.from_list(rows), {"pairs": len(rows), "dropped_too_long": too_long,
                                     "truncated": truncated}


def build_trainer(config: BTRMConfig, output_dir: Path):
    from transformers import PrinterCallback
    from trl import RewardConfig, RewardTrainer

    from .callbacks import CpuThreads, MetricsWriter, RichProgress

    model, tokenizer = load_reward_model(config.model, config.seed)
    dataset, counts = preference_dataset(config, tokenizer)
    b = config.bt
    args = trl_args(RewardConfig, {
        "output_dir": str(output_dir), "max_steps": config.max_steps, "save_steps": config.save_steps,
        "seed": config.seed, "learning_rate": b.learning_rate, "per_device_train_batch_size": b.batch_size,
        "gradient_accumulation_steps": b.gradient_accumulation_steps, "max_length": b.max_length,
        "center_rewards_coefficient": b.center_rewards_coefficient,
    }, config.trl)
    trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                            peft_config=config.lora.peft_config("SEQ_CLS"))
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(MetricsWriter(output_dir / "metrics.jsonl"))
    trainer.add_callback(CpuThreads())
    trainer.add_callback(RichProgress({"loss": "loss", "accuracy": "acc", "margin": "margin"}))
    return trainer, counts


def save_merged(trainer, final: Path) -> None:
    """Save a model directory ``ScalarRMJudge`` loads: LoRA merged into the base (see above)."""
    from peft import PeftModel

    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    if not isinstance(unwrapped, PeftModel):
        trainer.save_model(str(final))
        return
    adapter_dir = final.with_name("final_adapter")
    trainer.save_model(str(adapter_dir))  # every process joins: a sharded model is gathered here
    if not trainer.accelerator.is_main_process:
        return
    base_path = unwrapped.peft_config["default"].base_model_name_or_path
    base, _ = load_reward_model(base_path, seed=0)  # the head's init is overwritten by the adapter's
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(final), safe_serialization=True)
    trainer.processing_class.save_pretrained(str(final))


def train_bt_rm(config: BTRMConfig, resume: bool = False) -> dict:
    """Train, save the merged model, write the report, and return the JSON summary."""
    from .lifecycle import run_training

    def save(trainer, final: Path) -> None:
        save_merged(trainer, final)
        if config.bt.long_pairs == "truncate" and trainer.accelerator.is_main_process:
            # the judge must cut long stories as training did: ScalarRMJudge reads this
            write_rm_settings(final, max_length=config.bt.max_length)

    return run_training(config, resume, build_trainer, title="Bradley-Terry reward model",
                        judge_spec="scalar:{final}", summary_keys=("loss", "accuracy", "margin"),
                        save_final=save)
