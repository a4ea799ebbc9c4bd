"""``quillrl eval constraints|winrate|policy``: did training help the policy?

* ``eval constraints``: pass rates of a responses file, overall, per constraint id and family.
* ``eval winrate``: A against B on the same tasks with any judge (swap on for pairwise
  judges), the LC win rate and the reward-hacking signals; ``--judgments FILE`` is resumable
  exactly as ``quillrl judge --out``.
* ``eval policy``: generate both policies' responses (cached and resumed in ``--out-dir``),
  then all of the above, the paired before/after, and ``report.md`` with plots.

Definitions: docs/design.md, "Policy evaluation". The statistics are in ``quillrl.eval``
(``winrate``, ``hacking``, ``constraint_rates``, ``headtohead``); this module only reads,
runs and writes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import typer

from ..judges.options import JudgeOptions
from ._common import (SKIP_INVALID_HELP, at_least, check_output_path, print_summary, report_skipped,
                      user_errors)
from .eval import MAX_RESAMPLES, MIN_RESAMPLES, eval_app
from .generate import (BACKEND_OPTION, BATCH_SIZE_OPTION, MAX_NEW_TOKENS_OPTION, MODEL_HELP,
                       TEMPERATURE_OPTION, TOP_P_OPTION, check_sampling, read_task_file, resumable)
from .judge import (BACKEND_BATCH_OPTION, DEVICE_OPTION, DTYPE_OPTION, MODE_OPTION, PAIR_BATCH_OPTION,
                    VLLM_OPTION)
from .verify import FREE_TEXT_THRESHOLD_OPTION, FREE_TEXT_VERIFIER_OPTION

JUDGE_HELP = ("Judge spec: genrm:<backend> (local, openai or vllm), scalar:<path>, "
              "baseline:length, baseline:random[:seed].")
SWAP_HELP = "Pairwise (GenRM) judges see both orders and are debiased (default on)."
WINRATE_KEYS = ("n", "win_rate", "ci_low", "ci_high", "wins", "ties", "losses", "invalid",
                "lc_win_rate", "sc_win_rate", "mean_words_a", "mean_words_b")


def _echo_named(counts: dict[str, Any]) -> None:
    """Leftovers of a join, named on stderr (the summary also counts them): each ``X_ids`` list
    next to its count, ``X`` or ``X_<what>``."""
    for key, ids in counts.items():
        if key.endswith("_ids") and ids:
            prefix = key[:-4]
            count_key = prefix if prefix in counts else next(
                k for k in counts if k.startswith(prefix + "_") and k != key)
            more = ", ..." if counts[count_key] > len(ids) else ""
            typer.echo(f"{counts[count_key]} {count_key.replace('_', ' ')}: "
                       f"{', '.join(map(str, ids))}{more}", err=True)


def _tasks(path: Path, skip_invalid: bool, free_text_verifier: str | None,
           limit: int | None = None) -> list:
    """The first ``limit`` tasks of a JSONL path or a bundled set (``bundled:demo_heldout``);
    free_text constraints without ``--free-text-verifier`` are refused, as in ``train policy``."""
    from ..constraints import refuse_unjudged_free_text

    tasks = read_task_file(path, skip_invalid)[:limit or None]
    refuse_unjudged_free_text(tasks, free_text_verifier, source=path, setting="--free-text-verifier")
    return tasks


def _responses(path: Path, skip_invalid: bool = False) -> list:
    from ..data.readers import read_responses

    result = read_responses(path, skip_invalid=skip_invalid)
    report_skipped(path, result)
    return result.records


def _check_counts(resamples: int, **counts: int | None) -> None:
    """The bootstrap's resamples and each ``--batch-size``-like count (keyword: option name)."""
    at_least("--resamples", resamples, MIN_RESAMPLES, MAX_RESAMPLES)
    for option, value in counts.items():
        at_least("--" + option.replace("_", "-"), value, 1)


def _joined(tasks: list, responses: list, path: Path) -> tuple[list, dict[str, Any]]:
    """Responses joined to tasks; none joining is an error that names the file and the ids."""
    from ..errors import DataError
    from ..eval.constraint_rates import input_counts, join

    pairs, left = join(tasks, responses)
    if not pairs:
        raise DataError(f"none of its {len(responses)} responses matches a task (ids such as "
                        f"{', '.join(map(str, left['unmatched'][:5])) or '-'}); check --tasks",
                        path=str(path))
    counts = input_counts(left)
    _echo_named(counts)
    return pairs, counts


@eval_app.command("constraints")
@user_errors
def constraints_command(
    tasks: Path = typer.Option(..., "--tasks", help="Tasks JSONL (quillrl, or IFEval/IFBench raw), or bundled:NAME."),
    responses: Path = typer.Option(..., "--responses", help="Responses JSONL (`quillrl generate`)."),
    out: Optional[Path] = typer.Option(None, "--out", help="One line per response: every "
                                       "constraint's verdict, family and reason."),
    report_dir: Optional[Path] = typer.Option(None, "--report-dir", help="Write pass_rates.png "
                                              "(a bar per family with its interval) here."),
    loose: bool = typer.Option(False, "--loose", help="IFEval's loose reading instead of strict."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    resamples: int = typer.Option(2000, "--resamples", help="Bootstrap resamples."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help=SKIP_INVALID_HELP),
    free_text_verifier: Optional[str] = FREE_TEXT_VERIFIER_OPTION,
    free_text_threshold: float = FREE_TEXT_THRESHOLD_OPTION,
) -> None:
    """Constraint pass rate overall, per family and per constraint id, with 95% intervals
    (bootstrap by task). Tasks without constraints are counted apart."""
    from ..data import write_jsonl
    from ..eval.constraint_rates import pass_rates, verdict_rows
    from ..judges.free_text import open_free_text_verifier

    _check_counts(resamples)
    check_output_path(out, inputs=[tasks, responses])
    check_output_path(report_dir, option="--report-dir", inputs=[tasks, responses], directory=True)
    pairs, counts = _joined(_tasks(tasks, skip_invalid, free_text_verifier),
                            _responses(responses, skip_invalid), responses)
    with open_free_text_verifier(free_text_verifier, threshold=free_text_threshold) as verifier:
        rows = verdict_rows(pairs, loose=loose, free_text_verifier=verifier)
    if out is not None:
        write_jsonl(out, rows)
    summary = {**pass_rates(rows, n_resamples=resamples, seed=seed), **counts,
               "loose": loose}
    _echo_named({k: summary[k] for k in ("undecided", "undecided_ids")})
    if report_dir is not None:
        from ..eval.policy_report import plot_pass_rates

        summary["plot"] = str(plot_pass_rates({responses.name: summary}, report_dir / "pass_rates.png"))
    print_summary(summary)


@eval_app.command("winrate")
@user_errors
@resumable
def winrate_command(
    tasks: Path = typer.Option(..., "--tasks", help="Tasks JSONL the responses answer, or bundled:NAME."),
    a: Path = typer.Option(..., "--a", help="Responses of A (e.g. the trained policy)."),
    b: Path = typer.Option(..., "--b", help="Responses of B (e.g. the base policy)."),
    judge: str = typer.Option(..., "--judge", help=JUDGE_HELP),
    swap: bool = typer.Option(True, "--swap/--no-swap", help=SWAP_HELP),
    mode: str = MODE_OPTION,
    judgments: Optional[Path] = typer.Option(None, "--judgments", help="Judgments JSONL, resumed "
                                             "by a rerun (as `quillrl judge --out`)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the A/B placement and the bootstrap."),
    resamples: int = typer.Option(2000, "--resamples", help="Bootstrap resamples."),
    batch_size: int = PAIR_BATCH_OPTION,
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", help="GenRM reasoning "
                                                 "length limit (default: the judge's)."),
    device: Optional[str] = DEVICE_OPTION,
    dtype: Optional[str] = DTYPE_OPTION,
    backend_batch_size: Optional[int] = BACKEND_BATCH_OPTION,
    vllm_option: Optional[list[str]] = VLLM_OPTION,
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help=SKIP_INVALID_HELP),
    free_text_verifier: Optional[str] = FREE_TEXT_VERIFIER_OPTION,
    free_text_threshold: float = FREE_TEXT_THRESHOLD_OPTION,
) -> None:
    """Head-to-head win rate of A over B with a 95% interval (bootstrap by task), ties, losses,
    invalid judgments (left out, counted), the LC win rate and the reward-hacking signals."""
    from ..eval.headtohead import head_to_head, pair_responses
    from ..judges import check_judge_spec
    from ..judges.free_text import open_free_text_verifier

    _check_counts(resamples, batch_size=batch_size)
    check_output_path(judgments, option="--judgments", inputs=[tasks, a, b])
    options = JudgeOptions.from_cli(mode=mode, swap=swap, max_new_tokens=max_new_tokens,
                                    device=device, dtype=dtype,
                                    backend_batch_size=backend_batch_size, vllm_option=vllm_option)
    # --swap is on by default here, and a judge that has no orders ignores it
    replace(options, swap=False).check_used([judge])
    judge = options.named(judge)
    check_judge_spec(judge)
    task_list = _tasks(tasks, skip_invalid, free_text_verifier)
    resp_a, resp_b = _responses(a, skip_invalid), _responses(b, skip_invalid)
    _joined(task_list, resp_a, a)
    _joined(task_list, resp_b, b)
    units, counts = pair_responses(task_list, resp_a, resp_b)
    _echo_named({k: v for k, v in counts.items() if k.startswith("only")})
    if not units:
        from ..errors import ConfigError

        raise ConfigError(f"--a {a} and --b {b} share no (task id, sample): nothing to judge")
    from ..eval.judging import JudgeRun, judge_units, judged_units

    run = JudgeRun.of(judge, options, seed=seed, batch_size=batch_size)
    records, interrupted = judge_units(units, run, judgments=judgments)
    with open_free_text_verifier(free_text_verifier, threshold=free_text_threshold) as verifier:
        summary = head_to_head(judged_units(units, records), records, n_resamples=resamples,
                               seed=seed, free_text_verifier=verifier)
    print_summary({**{k: summary[k] for k in WINRATE_KEYS}, "hacking": summary["hacking"],
                   "judge": judge, "swap": records[0]["swap"] if records else None, **counts,
                   "interrupted": interrupted,
                   **({"judgments": str(judgments)} if judgments else {})})
    if interrupted:
        raise typer.Exit(code=130)


POLICY_KEYS = ("n", "pass_rate_base", "pass_rate_trained", "pass_rate_diff", "diff_ci_low",
               "diff_ci_high", "win_rate", "ci_low", "ci_high", "lc_win_rate", "sc_win_rate", "mean_words_base",
               "mean_words_trained", "report")


@eval_app.command("policy")
@user_errors
@resumable
def policy_command(
    base: str = typer.Option(..., "--base", help="Base policy. " + MODEL_HELP),
    trained: str = typer.Option(..., "--trained", help="Trained policy (e.g. a `train policy` "
                                "final/ adapter). " + MODEL_HELP),
    tasks: Path = typer.Option(..., "--tasks", help="Held-out tasks JSONL (never trained on), or bundled:NAME."),
    judge: str = typer.Option(..., "--judge", help=JUDGE_HELP),
    out_dir: Path = typer.Option(..., "--out-dir", help="Responses, judgments (all resumed by a "
                                 "rerun), summary.json, report.md and plots."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N tasks (and, with "
                                        "--ifeval, the first N IFEval prompts)."),
    n: int = typer.Option(1, "--n", help="Samples per task and policy."),
    temperature: float = TEMPERATURE_OPTION,
    top_p: float = TOP_P_OPTION,
    max_new_tokens: int = MAX_NEW_TOKENS_OPTION,
    seed: int = typer.Option(0, "--seed", help="Seed of sampling, A/B placement and bootstrap."),
    batch_size: int = BATCH_SIZE_OPTION,
    backend: str = BACKEND_OPTION,
    swap: bool = typer.Option(True, "--swap/--no-swap", help=SWAP_HELP),
    mode: str = MODE_OPTION,
    judge_max_new_tokens: Optional[int] = typer.Option(None, "--judge-max-new-tokens",
                                                       help="GenRM reasoning length limit."),
    judge_batch_size: int = typer.Option(16, "--judge-batch-size", help="Pairs per compare_many call."),
    resamples: int = typer.Option(2000, "--resamples", help="Bootstrap resamples."),
    ifeval: bool = typer.Option(False, "--ifeval", help="Also run `eval ifeval` on both policies "
                                "(541 prompts of up to 1280 tokens each: long on a CPU)."),
    vllm_option: Optional[list[str]] = VLLM_OPTION,
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help=SKIP_INVALID_HELP),
    free_text_verifier: Optional[str] = FREE_TEXT_VERIFIER_OPTION,
    free_text_threshold: float = FREE_TEXT_THRESHOLD_OPTION,
) -> None:
    """Trained against base on held-out tasks: pass rates with the paired difference, win rate
    with its interval and the LC win rate, the hacking signals; report.md with plots."""
    from ..eval.generate import check_spec, engine_options
    from ..eval.judging import JudgeRun
    from ..eval.policy import compare_policies, generate_sides, write_summary
    from ..judges import check_judge_spec
    from ..judges.free_text import open_free_text_verifier

    check_sampling(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                   batch_size=batch_size, limit=limit)
    _check_counts(resamples, judge_batch_size=judge_batch_size,
                  judge_max_new_tokens=judge_max_new_tokens)
    check_output_path(out_dir, option="--out-dir", inputs=[tasks], directory=True)
    options = JudgeOptions.from_cli(mode=mode, swap=swap, max_new_tokens=judge_max_new_tokens,
                                    vllm_option=vllm_option)
    engine = engine_options(options.vllm_options, backend, judge=judge)  # for generation
    judge = options.named(judge)
    check_judge_spec(judge)
    for spec in (base, trained):  # both, before the first one spends minutes generating
        check_spec(spec, backend)
    task_list = _tasks(tasks, skip_invalid, free_text_verifier, limit)
    names = {"base": base, "trained": trained}
    files = generate_sides(names, task_list, out_dir, n=n, temperature=temperature, top_p=top_p,
                           max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size,
                           backend=backend, backend_options=engine)
    run = JudgeRun.of(judge, options, seed=seed, batch_size=judge_batch_size)
    with open_free_text_verifier(free_text_verifier, threshold=free_text_threshold) as verifier:
        summary, details = compare_policies(task_list, files, run, out_dir=out_dir,
                                            n_resamples=resamples, names=names,
                                            free_text_verifier=verifier)
    if ifeval:
        summary["ifeval"] = _ifeval_sides(names, out_dir, limit=limit, batch_size=batch_size,
                                          backend=backend, engine=engine)
    write_summary(out_dir, summary, details)
    print_summary({**{k: summary[k] for k in POLICY_KEYS},
                   **{k: v for k, v in summary.items() if k not in POLICY_KEYS}})


def _ifeval_sides(names: dict[str, str], out_dir: Path, *, limit: int | None, batch_size: int,
                  backend: str, engine: dict | None) -> dict[str, dict]:
    """``eval ifeval`` on each side's policy (``eval policy --ifeval``), responses resumed in
    ``out_dir/ifeval-<side>.jsonl``."""
    from ..data.importers import resolve_data_root
    from ..data.task_sources import IFEVAL_FILE
    from ..eval.ifeval import BenchmarkOptions
    from .eval_ifeval import run_benchmark

    return {side: run_benchmark(BenchmarkOptions(
        "ifeval", spec, resolve_data_root() / IFEVAL_FILE, out_dir / f"ifeval-{side}.jsonl",
        limit=limit, batch_size=batch_size, backend=backend, backend_options=engine))
        for side, spec in names.items()}
