"""``quillrl train policy|genrm-sft|genrm-grpo|bt-rm`` and ``quillrl report``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from ._common import print_summary, user_errors

train_app = typer.Typer(help="Train a policy or a judge; every run writes metrics.jsonl and report.md.",
                        no_args_is_help=True)
app.add_typer(train_app, name="train")

CONFIG = typer.Option(None, "--config", "-c", help="YAML config (see configs/)")
MAX_STEPS = typer.Option(None, "--max-steps", help="override max_steps")
OUTPUT_DIR = typer.Option(None, "--output-dir", "-o", help="override output_dir")
RESUME = typer.Option(False, "--resume", help="continue from the last checkpoint in the output dir")
SET = typer.Option(None, "--set", help="override any config key, e.g. --set grpo.learning_rate=5e-5")


def _overrides(max_steps: Optional[int], output_dir: Optional[Path], sets: Optional[list[str]]) -> list[str]:
    out = list(sets or [])
    if max_steps is not None:
        out.append(f"max_steps={max_steps}")
    if output_dir is not None:
        out.append(f"output_dir={output_dir}")
    return out


@train_app.command("policy")
@user_errors
def train_policy_cmd(config: Optional[Path] = CONFIG, max_steps: Optional[int] = MAX_STEPS,
                     output_dir: Optional[Path] = OUTPUT_DIR, resume: bool = RESUME,
                     set_: Optional[list[str]] = SET) -> None:
    """GRPO on writing tasks with a judge's writing reward mixed with constraint passes (RLMR)."""
    from ..config import load_config
    from ..train.policy_run import PolicyConfig, train_policy

    cfg = load_config(config, PolicyConfig, _overrides(max_steps, output_dir, set_))
    print_summary(train_policy(cfg, resume=resume))


@train_app.command("genrm-sft")
@user_errors
def train_genrm_sft_cmd(config: Optional[Path] = CONFIG, max_steps: Optional[int] = MAX_STEPS,
                        output_dir: Optional[Path] = OUTPUT_DIR, resume: bool = RESUME,
                        set_: Optional[list[str]] = SET) -> None:
    """SFT of a GenRM on `quillrl distill` output, loss on the judge's reply only (RLCS stage 1)."""
    from ..config import load_config
    from ..train.genrm_sft import GenRMSFTConfig, train_genrm_sft

    cfg = load_config(config, GenRMSFTConfig, _overrides(max_steps, output_dir, set_))
    print_summary(train_genrm_sft(cfg, resume=resume))


@train_app.command("genrm-grpo")
@user_errors
def train_genrm_grpo_cmd(config: Optional[Path] = CONFIG, max_steps: Optional[int] = MAX_STEPS,
                         output_dir: Optional[Path] = OUTPUT_DIR, resume: bool = RESUME,
                         set_: Optional[list[str]] = SET) -> None:
    """GRPO of a GenRM on labelled pairs with entropy-shaped rewards (RLCS stage 2; floor 1 = unshaped)."""
    from ..config import load_config
    from ..train.genrm_grpo_run import GenRMGRPOConfig, train_genrm_grpo

    cfg = load_config(config, GenRMGRPOConfig, _overrides(max_steps, output_dir, set_))
    print_summary(train_genrm_grpo(cfg, resume=resume))


@train_app.command("bt-rm")
@user_errors
def train_bt_rm_cmd(config: Optional[Path] = CONFIG, max_steps: Optional[int] = MAX_STEPS,
                    output_dir: Optional[Path] = OUTPUT_DIR, resume: bool = RESUME,
                    set_: Optional[list[str]] = SET) -> None:
    """A Bradley-Terry reward model on preference pairs; final/ loads as scalar:<dir>."""
    from ..config import load_config
    from ..train.bt_rm import BTRMConfig, train_bt_rm

    cfg = load_config(config, BTRMConfig, _overrides(max_steps, output_dir, set_))
    print_summary(train_bt_rm(cfg, resume=resume))


@app.command("report")
@user_errors
def report_cmd(run_dir: Path = typer.Argument(..., help="a run's output directory")) -> None:
    """(Re)write report.md and its PNG plots from a run's metrics.jsonl."""
    from ..train.report import read_metrics, write_report

    path = write_report(run_dir)
    print_summary({"report": str(path), "steps": len(read_metrics(run_dir))})
