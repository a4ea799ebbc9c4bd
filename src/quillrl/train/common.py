"""What every quillrl trainer shares: TRL argument pass-through, devices, run directories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from ..config import StageConfig
from ..errors import ConfigError


class LoraSection(StageConfig):
    """LoRA adapters (PEFT). ``enabled: false`` trains every weight."""

    enabled: bool = Field(True, description="train LoRA adapters instead of all weights")
    r: int = Field(8, ge=1, description="adapter rank")
    alpha: int = Field(16, ge=1, description="LoRA alpha (scale = alpha / r)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapter input")
    target_modules: list[str] | str = Field("all-linear", description="module names, or 'all-linear'")

    def peft_config(self, task_type: str = "CAUSAL_LM"):
        if not self.enabled:
            return None
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=self.target_modules, task_type=task_type)


class TrainRunConfig(StageConfig):
    """What every ``quillrl train`` config shares: the fields :func:`train.lifecycle.run_training`
    and the TRL argument builders read. Each trainer adds its model, data and method sections."""

    max_steps: int = Field(20, ge=1, description="optimizer steps")
    save_steps: int = Field(5, ge=1, description="checkpoint every N steps")
    skip_invalid: bool = Field(False, description="leave out bad data lines (counted and listed "
                               "with their line numbers) instead of stopping at the first")
    lora: LoraSection = LoraSection()


def output_dir_field(default: str) -> Any:
    """The ``output_dir`` field of a ``quillrl train`` config, defaulting to ``default``."""
    return Field(default, description="where checkpoints, metrics and the report go")


def trl_field(trl_config: str) -> Any:
    """The ``trl:`` pass-through field of a config whose trainer takes TRL's ``trl_config``."""
    return Field(default_factory=dict, description=f"extra {trl_config} fields, passed to TRL unchanged")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def trl_args(config_cls: type, base: dict[str, Any], extra: dict[str, Any]) -> Any:
    """Build a TRL config from our fields plus the user's ``trl:`` pass-through section.

    ``extra`` reaches TRL unchanged (vLLM generation, DeepSpeed/FSDP, schedulers...); an
    unknown key is reported with TRL's own list of accepted fields.
    """
    import dataclasses

    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(extra) - known)
    if unknown:
        raise ConfigError(f"trl: unknown {config_cls.__name__} field(s) {unknown}; see TRL's "
                          f"{config_cls.__name__} for the accepted fields")
    on_gpu = cuda_available()
    defaults = {"report_to": "none", "logging_steps": 1, "disable_tqdm": True,
                "use_cpu": not on_gpu, "bf16": on_gpu, "save_strategy": "steps",
                "save_total_limit": 2, "gradient_checkpointing": False}
    return config_cls(**{**defaults, **base, **extra})


def _complete(checkpoint: Path) -> bool:
    has_weights = any((checkpoint / f).exists() for f in
                      ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json"))
    return has_weights and (checkpoint / "trainer_state.json").exists() and (checkpoint / "optimizer.pt").exists()


def last_checkpoint(output_dir: str | Path) -> str | None:
    """The newest *complete* ``checkpoint-N`` (a run killed while saving leaves a partial one,
    which is skipped rather than crashing the resume)."""
    path = Path(output_dir)
    if not path.is_dir():
        return None
    found = sorted((int(p.name.split("-")[1]), p) for p in path.glob("checkpoint-*")
                   if p.is_dir() and p.name.split("-")[1].isdigit())
    for _, ckpt in reversed(found):
        if _complete(ckpt):
            return str(ckpt)
    return None


def write_summary(output_dir: Path, summary: dict) -> None:
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
