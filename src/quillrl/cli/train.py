"""``quillrl train policy|genrm-sft|genrm-grpo|bt-rm`` and ``quillrl report``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from ._common import check_output_path, print_summary, user_errors

train_app = typer.Typer(help="Train a policy or a judge; every run writes metrics.jsonl and report.md.",
                        no_args_is_help=True)
app.add_typer(train_app, name="train")

CONFIG = typer.Option(None, "--config", "-c", help="YAML config (required; configs/demo.yaml "
                      "is the demo job)")
MAX_STEPS = typer.Option(None, "--max-steps", help="override max_steps")
OUTPUT_DIR = typer.Option(None, "--output-dir", "-o", help="override output_dir")
RESUME = typer.Option(False, "--resume", help="continue from the last checkpoint in the output dir")
SET = typer.Option(None, "--set", help="override any config key, e.g. --set grpo.learning_rate=5e-5")
SKIP_INVALID = typer.Option(False, "--skip-invalid", help="leave out bad data lines (counted and "
                            "listed) instead of stopping at the first (= skip_invalid: true)")


def _load(config: Optional[Path], cls: type, max_steps: Optional[int], output_dir: Optional[Path],
          sets: Optional[list[str]], skip_invalid: bool):
    """The validated config, with its output directory checked (a directory, not one of the
    inputs) before anything is loaded or written."""
    from ..config import load_config

    overrides = _overrides(max_steps, output_dir, sets) + (["skip_invalid=true"] if skip_invalid else [])
    cfg = load_config(config, cls, overrides, require=True)
    inputs = [config, *(getattr(cfg, k, None) for k in ("tasks", "pairs", "data"))]
    check_output_path(Path(cfg.output_dir), option="output_dir", directory=True,
                      inputs=[i for i in inputs if i is not None and not str(i).startswith("bundled:")])
    return cfg


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
                     set_: Optional[list[str]] = SET, skip_invalid: bool = SKIP_INVALID) -> None:
    """GRPO on writing tasks with a judge's writing reward mixed with constraint passes (RLMR)."""
    from ..train.policy_run import PolicyConfig, train_policy

    cfg = _load(config, PolicyConfig, max_steps, output_dir, set_, skip_invalid)
    print_summary(train_policy(cfg, resume=resume))


@train_app.command("genrm-sft")
@user_errors
def train_genrm_sft_cmd(config: Optional[Path] = CONFIG, max_steps: Optional[int] = MAX_STEPS,
                        output_dir: Optional[Path] = OUTPUT_DIR, resume: bool = RESUME,
                        set_: Optional[list[str]] = SET, skip_invalid: bool = SKIP_INVALID) -> None:
    """SFT of a GenRM on `quillrl distill` output, loss on the judge's reply only (RLCS stage 1)."""
    from ..train.genrm_sft import GenRMSFTConfig, train_genrm_sft

    cfg = _load(config, GenRMSFTConfig, max_steps, output_dir, set_, skip_invalid)
    print_summary(train_genrm_sft(cfg, resume=resume))


@train_app.command("genrm-grpo")
@user_errors
def train_genrm_grpo_cmd(config: Optional[Path] = CONFIG, max_steps: Optional[int] = MAX_STEPS,
                         output_dir: Optional[Path] = OUTPUT_DIR, resume: bool = RESUME,
                         set_: Optional[list[str]] = SET, skip_invalid: bool = SKIP_INVALID) -> None:
    """GRPO of a GenRM on labelled pairs with entropy-shaped rewards (RLCS stage 2; floor 1 = unshaped)."""
    from ..train.genrm_grpo_run import GenRMGRPOConfig, train_genrm_grpo

    cfg = _load(config, GenRMGRPOConfig, max_steps, output_dir, set_, skip_invalid)
    print_summary(train_genrm_grpo(cfg, resume=resume))


@train_app.command("bt-rm")
@user_errors
def train_bt_rm_cmd(config: Optional[Path] = CONFIG, max_steps: Optional[int] = MAX_STEPS,
                    output_dir: Optional[Path] = OUTPUT_DIR, resume: bool = RESUME,
                    set_: Optional[list[str]] = SET, skip_invalid: bool = SKIP_INVALID) -> None:
    """A Bradley-Terry reward model on preference pairs; final/ loads as scalar:<dir>."""
    from ..train.bt_rm import BTRMConfig, train_bt_rm

    cfg = _load(config, BTRMConfig, max_steps, output_dir, set_, skip_invalid)
    print_summary(train_bt_rm(cfg, resume=resume))


@app.command("report")
@user_errors
def report_cmd(run_dir: Path = typer.Argument(..., help="a run's output directory")) -> None:
    """(Re)write report.md and its PNG plots from a run's metrics.jsonl."""
    from ..train.report import read_metrics, write_report

    warnings: list[str] = []
    path = write_report(run_dir, warnings=warnings)
    for warning in warnings:
        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
    print_summary({"report": str(path), "steps": len(read_metrics(run_dir)),
                   "warnings": warnings})
