"""``quillrl judge``: judge every preference pair in a file, one JSONL line per pair.

Each line holds the judge's answer in slot terms (``p_a``, ``verdict``, each order's raw
output) and in human-label terms (``chosen_slot``, ``p_chosen``, ``label_correct``); the
seeded A/B presentation order is in ``quillrl.eval.judging``.

The run is resumable: ``--out`` is opened in append mode and pairs whose id is already there are
skipped, so rerunning the same command after a crash or Ctrl-C finishes the job. Every line is
flushed when written, so an interrupted file is valid up to its last complete line (a line cut
mid-write is dropped on resume). A resume with a different judge, mode, swap or order seed is
refused: one file must not mix two judges' answers. ``--restart`` starts the file afresh.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from ..judges.options import JudgeOptions
from ._common import VLLM_OPTION, app, option_of
from ._common import (SKIP_INVALID_HELP, at_least, check_output_path, print_summary,
                      report_skipped, user_errors)


def select_pairs(path: Path, limit: int | None, sample_size: int | None = None,
                 seed: int = 0, skip_invalid: bool = False) -> list:
    """The first ``limit`` pairs of the file, or ``sample_size`` of them drawn with ``seed``
    (kept in file order), or all of them; with ``skip_invalid`` bad lines are listed on stderr
    and left out."""
    from ..data import read_pairs
    from ..errors import ConfigError
    from ..eval.judging import sample_pairs

    for name, value in (("--limit", limit), ("--sample", sample_size)):
        at_least(name, value, 1)
    if limit is not None and sample_size is not None:
        raise ConfigError("give --limit (the first N pairs) or --sample (N pairs drawn with "
                          "--seed), not both")
    result = read_pairs(path, skip_invalid=skip_invalid)
    report_skipped(path, result)
    records = result.records
    if not records:
        raise ConfigError(f"{path} holds no pairs" + (
            f" ({len(result.skipped)} bad lines skipped)" if result.skipped else ""))
    if sample_size is not None:
        return sample_pairs(records, sample_size, seed)
    return records[:limit] if limit is not None else records


LIMIT_HELP = "Only the first N pairs."
SAMPLE_HELP = ("Only N pairs drawn at random with --seed (kept in file order): a fairer subset "
               "than the first N of a file grouped by prompt.")

# The judge options `judge`, `eval alignment` and `eval winrate` share, declared once; their help
# is JudgeOptions' (the library's) own.
MODE_OPTION = option_of(JudgeOptions, "mode", "reasoning")
DEVICE_OPTION = option_of(JudgeOptions, "device", None)
DTYPE_OPTION = option_of(JudgeOptions, "dtype", None)
BACKEND_BATCH_OPTION = option_of(JudgeOptions, "backend_batch_size", None)
PAIR_BATCH_OPTION = typer.Option(16, "--batch-size", help="Pairs per compare_many call.")
GENRM_MAX_NEW_TOKENS_OPTION = option_of(JudgeOptions, "max_new_tokens", None)
FORCE_VERDICT_OPTION = option_of(JudgeOptions, "force_verdict", False)
TIMEOUT_OPTION = option_of(JudgeOptions, "timeout", None)
ATTEMPTS_OPTION = option_of(JudgeOptions, "attempts", None)
LIMIT_OPTION = typer.Option(None, "--limit", help=LIMIT_HELP)
SAMPLE_OPTION = typer.Option(None, "--sample", help=SAMPLE_HELP)


@app.command("judge")
@user_errors
def judge_command(
    pairs: Path = typer.Option(..., "--pairs", help="Preference pairs JSONL "
                               "({id, prompt, chosen, rejected}; chosen is the human's pick)."),
    judge: str = typer.Option(..., "--judge", help="Judge spec: genrm:<backend>, scalar:<path>, "
                              "baseline:length, baseline:random[:seed]."),
    out: Path = typer.Option(..., "--out", help="JSONL to append to; ids already there are "
                             "skipped (resume)."),
    mode: str = MODE_OPTION,
    swap: bool = option_of(JudgeOptions, "swap", False),
    limit: Optional[int] = LIMIT_OPTION,
    sample_size: Optional[int] = SAMPLE_OPTION,
    seed: int = typer.Option(0, "--seed", help="Seed of each pair's A/B presentation order "
                             "(and of --sample)."),
    batch_size: int = PAIR_BATCH_OPTION,
    max_new_tokens: Optional[int] = GENRM_MAX_NEW_TOKENS_OPTION,
    force_verdict: bool = FORCE_VERDICT_OPTION,
    device: Optional[str] = DEVICE_OPTION,
    dtype: Optional[str] = DTYPE_OPTION,
    backend_batch_size: Optional[int] = BACKEND_BATCH_OPTION,
    restart: bool = typer.Option(False, "--restart", help="Replace --out instead of resuming."),
    timeout: Optional[float] = TIMEOUT_OPTION,
    attempts: Optional[int] = ATTEMPTS_OPTION,
    vllm_option: Optional[list[str]] = VLLM_OPTION,
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help=SKIP_INVALID_HELP),
) -> None:
    """Judge preference pairs, one JSONL line each; rerun to resume.

    Chosen and rejected are shown as A/B in a seeded random order per pair. The JSON summary
    gives accuracy against the human label, the invalid count and the cost."""
    from ..eval.judging import judge_into, open_judgments, resume_pairs, run_summary

    at_least("--batch-size", batch_size, 1)
    check_output_path(out, inputs=[pairs])
    options = JudgeOptions.from_cli(
        mode=mode, swap=swap, max_new_tokens=max_new_tokens, force_verdict=force_verdict,
        device=device, dtype=dtype, backend_batch_size=backend_batch_size, timeout=timeout,
        attempts=attempts, vllm_option=vllm_option)
    options.check_used([judge])
    judge = options.named(judge)
    selected = select_pairs(pairs, limit, sample_size, seed, skip_invalid=skip_invalid)
    settings = {**options.judge_settings(judge), "order_seed": seed}
    # The file is checked (settings, texts, a line cut off mid-write) before the judge is
    # built: a refused resume should not first load a model.
    with open_judgments(out, settings, restart=restart) as writer:
        records, todo = resume_pairs(writer, selected)
        start = time.perf_counter()
        interrupted = False
        if todo:  # nothing left to judge (a finished resume): report without loading a model
            with options.build(judge) as model:
                interrupted = judge_into(writer, records, todo, model, spec=judge, seed=seed,
                                         batch_size=batch_size)
        wall = time.perf_counter() - start
    ordered = [records[p.id] for p in selected if p.id in records]
    print_summary(run_summary(ordered, pairs=len(selected), written=writer.written,
                              skipped_done=len(selected) - len(todo), interrupted=interrupted,
                              wall_seconds=round(wall, 3), out=str(out), **settings))
    if interrupted:
        raise typer.Exit(code=130)
