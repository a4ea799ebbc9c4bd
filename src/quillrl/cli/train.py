"""``quillrl train policy|genrm-sft|genrm-grpo|bt-rm`` and ``quillrl report``."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

import typer

from ._common import app
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


def _train_command(name: str, module: str, config_cls: str, train_fn: str, doc: str) -> None:
    """Register ``quillrl train <name>``: load ``module``'s ``config_cls`` from the options and
    run ``train_fn`` on it. The four train verbs differ only in these; the trainer module is
    imported when the verb runs, so ``quillrl --help`` stays fast."""

    def command(config: Optional[Path] = CONFIG, max_steps: Optional[int] = MAX_STEPS,
                output_dir: Optional[Path] = OUTPUT_DIR, resume: bool = RESUME,
                set_: Optional[list[str]] = SET, skip_invalid: bool = SKIP_INVALID) -> None:
        trainer = importlib.import_module(module, __package__)
        cfg = _load(config, getattr(trainer, config_cls), max_steps, output_dir, set_, skip_invalid)
        print_summary(getattr(trainer, train_fn)(cfg, resume=resume))
        from ..train.lifecycle import leave_if_distributed

        leave_if_distributed()  # a finished rank skips finalization (its docstring says why)

    command.__name__ = f"train_{name.replace('-', '_')}_cmd"
    command.__doc__ = doc
    train_app.command(name)(user_errors(command))


_train_command("policy", "..train.policy_run", "PolicyConfig", "train_policy",
               "GRPO on writing tasks with a judge's writing reward mixed with constraint passes (RLMR).")
_train_command("genrm-sft", "..train.genrm_sft_run", "GenRMSFTConfig", "train_genrm_sft",
               "SFT of a GenRM on `quillrl distill` output, loss on the judge's reply only (RLCS stage 1).")
_train_command("genrm-grpo", "..train.genrm_grpo_run", "GenRMGRPOConfig", "train_genrm_grpo",
               "GRPO of a GenRM on labelled pairs with entropy-shaped rewards (RLCS stage 2; floor 1 = "
               "unshaped).")
_train_command("bt-rm", "..train.bt_rm_run", "BTRMConfig", "train_bt_rm",
               "A Bradley-Terry reward model on preference pairs; final/ loads as scalar:<dir>.")


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
