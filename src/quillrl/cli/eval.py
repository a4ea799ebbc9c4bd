"""``quillrl eval``: evaluation commands. ``eval alignment`` scores judges against human labels.

``eval alignment`` either runs judges itself (``--judge``) or scores judgments already written
by ``quillrl judge`` (``--judgments``): a slow GenRM run is best made with ``quillrl judge``,
which resumes after an interruption, and scored afterwards, as often as wanted, at no cost.
Other evaluations (IFEval, win rate...) add their commands to :data:`eval_app`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..judges.options import JudgeOptions
from ._common import VLLM_OPTION, app
from ._common import (SKIP_INVALID_HELP, at_least, check_choice, check_output_path, print_summary,
                      report_skipped, user_errors)
from .judge import (ATTEMPTS_OPTION, BACKEND_BATCH_OPTION, DEVICE_OPTION, DTYPE_OPTION,
                    FORCE_VERDICT_OPTION, GENRM_MAX_NEW_TOKENS_OPTION, LIMIT_OPTION, MODE_OPTION,
                    PAIR_BATCH_OPTION, SAMPLE_OPTION, TIMEOUT_OPTION, select_pairs)

eval_app = typer.Typer(help="Evaluate judges and policies.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

# The bootstrap holds resamples x pairs indices in memory: 10^6 resamples of 10^4 pairs is
# already 80 GB, so the bound is on their product (checked once the pairs are known) as well.
MIN_RESAMPLES, MAX_RESAMPLES = 100, 1_000_000
MAX_BOOTSTRAP_CELLS = 100_000_000

SUMMARY_KEYS = ("n", "accuracy", "ci_low", "ci_high", "position_consistency", "invalid_rate",
                "ece")


def saved_judgments(paths: list[Path], pairs: list, skip_invalid: bool = False) -> list[list[dict]]:
    """``quillrl.eval.alignment.saved_judgments``, skipped lines listed on stderr."""
    from ..eval.alignment import saved_judgments as saved

    return saved(paths, pairs, skip_invalid=skip_invalid, on_skipped=report_skipped)


def _check_bootstrap(selected: list, resamples: int, bootstrap_by: str) -> None:
    """Refuse a bootstrap too large to hold, or by prompt over a single prompt."""
    from ..errors import ConfigError

    if resamples * len(selected) > MAX_BOOTSTRAP_CELLS:
        raise ConfigError(f"--resamples {resamples} x {len(selected)} pairs needs more than "
                          f"{MAX_BOOTSTRAP_CELLS:,} bootstrap cells (about 0.8 GB of indices); use at most "
                          f"{MAX_BOOTSTRAP_CELLS // len(selected)} resamples")
    if bootstrap_by == "prompt" and len({p.prompt for p in selected}) < 2:
        raise ConfigError("--bootstrap-by prompt needs pairs with at least 2 different prompts; "
                          "these all share one (resample by pair instead)")


@eval_app.command("alignment")
@user_errors
def alignment(
    pairs: Path = typer.Option(..., "--pairs", help="Preference pairs JSONL "
                               "({id, prompt, chosen, rejected}; chosen is the human's pick)."),
    judges: Optional[list[str]] = typer.Option(
        None, "--judge", help="Judge spec; repeat to compare several (the summary's top-level "
        "numbers are the first row's)."),
    judgments: Optional[list[Path]] = typer.Option(
        None, "--judgments", help="Score judgments already written by `quillrl judge` (or "
        "--out) instead of judging again; repeatable. Listed before the --judge rows."),
    mode: str = MODE_OPTION,
    swap: bool = typer.Option(False, "--swap", help="GenRM judges see both orders (debiased; "
                              "gives position consistency)."),
    limit: Optional[int] = LIMIT_OPTION,
    sample_size: Optional[int] = SAMPLE_OPTION,
    out: Optional[Path] = typer.Option(None, "--out", help="Write every judgment (all judges) "
                                       "as JSONL, one line per judge and pair."),
    report_dir: Optional[Path] = typer.Option(None, "--report-dir", help="Write alignment.md, "
                                              "reliability.png and accuracy.png here."),
    seed: int = typer.Option(0, "--seed", help="Seed of the A/B presentation order, of "
                             "--sample and of the bootstrap."),
    batch_size: int = PAIR_BATCH_OPTION,
    resamples: int = typer.Option(2000, "--resamples", help="Bootstrap resamples for the CI."),
    bootstrap_by: str = typer.Option("pair", "--bootstrap-by", help="pair, or prompt: resample "
                                     "whole prompts (pairs sharing a prompt are correlated)."),
    max_new_tokens: Optional[int] = GENRM_MAX_NEW_TOKENS_OPTION,
    force_verdict: bool = FORCE_VERDICT_OPTION,
    device: Optional[str] = DEVICE_OPTION,
    dtype: Optional[str] = DTYPE_OPTION,
    backend_batch_size: Optional[int] = BACKEND_BATCH_OPTION,
    no_first_order: bool = typer.Option(
        False, "--no-first-order", help="Do not add a swap run's single-order (AB) row."),
    timeout: Optional[float] = TIMEOUT_OPTION,
    attempts: Optional[int] = ATTEMPTS_OPTION,
    vllm_option: Optional[list[str]] = VLLM_OPTION,
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help=SKIP_INVALID_HELP),
) -> None:
    """Agreement of judges with human preference labels.

    Accuracy with a 95% bootstrap CI (invalid judgments count as wrong), position consistency
    (--swap), invalid rate and expected calibration error, as a markdown table and, with
    --report-dir, a reliability diagram. A swap run adds a row for its AB order alone: the
    same judge without swap, at no extra cost."""
    from ..errors import ConfigError
    from ..eval.alignment import score_runs, with_first_order
    from ..eval.alignment_report import write_alignment_report
    from ..eval.judging import judge_each

    at_least("--batch-size", batch_size, 1)
    at_least("--resamples", resamples, MIN_RESAMPLES, MAX_RESAMPLES)
    check_choice("--bootstrap-by", bootstrap_by, ("pair", "prompt"))
    if not judges and not judgments:
        raise ConfigError("give at least one --judge SPEC or --judgments FILE")
    inputs = [pairs, *(judgments or [])]
    check_output_path(out, inputs=inputs)
    check_output_path(report_dir, option="--report-dir", inputs=inputs, directory=True)
    options = JudgeOptions.from_cli(
        mode=mode, swap=swap, max_new_tokens=max_new_tokens, force_verdict=force_verdict,
        device=device, dtype=dtype, backend_batch_size=backend_batch_size, timeout=timeout,
        attempts=attempts, vllm_option=vllm_option)
    options.check_used(judges or [])
    # --vllm-option goes into each vLLM judge's spec, which names it in the table and the output
    judges = [options.named(j) for j in judges or []]
    selected = select_pairs(pairs, limit, sample_size, seed, skip_invalid=skip_invalid)
    _check_bootstrap(selected, resamples, bootstrap_by)
    runs = saved_judgments(list(judgments or []), selected, skip_invalid=skip_invalid)
    runs += judge_each(judges, selected, options, out=out, seed=seed, batch_size=batch_size)
    # a swap run also holds the judge's single-order answers (its AB order): scored beside it
    scored = score_runs(with_first_order(runs, not no_first_order), selected, seed=seed,
                        n_resamples=resamples, bootstrap_by=bootstrap_by)
    rows, diffs = scored["rows"], scored["diffs"]
    files = {}
    if report_dir is not None:
        header = (f"`{pairs}`, {len(selected)} pairs, order and bootstrap seed {seed}, "
                  f"{resamples} resamples by {bootstrap_by}. Invalid judgments count as wrong.")
        files = write_alignment_report(report_dir, scored, header=header, name=pairs.name)
    typer.echo(scored["table"])
    first = rows[0]
    print_summary({**{k: first[k] for k in SUMMARY_KEYS}, "judge": first["judge"],
                   "mode": first["mode"], "swap": first["swap"], "judges": rows,
                   "paired_differences": diffs,
                   **({"out": str(out)} if out is not None else {}), **files})
