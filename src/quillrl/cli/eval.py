"""``quillrl eval``: evaluation commands. ``eval alignment`` scores judges against human labels.

``eval alignment`` either runs judges itself (``--judge``) or scores judgments already written
by ``quillrl judge`` (``--judgments``): a slow GenRM run is best made with ``quillrl judge``,
which resumes after an interruption, and scored afterwards, as often as wanted, at no cost.
Other evaluations (IFEval, win rate...) add their commands to :data:`eval_app`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ._common import app
from ._common import (SKIP_INVALID_HELP, at_least, check_choice, check_output_path, print_summary,
                      report_skipped, user_errors)
from .judge import (
    ATTEMPTS_OPTION,
    BACKEND_BATCH_OPTION,
    DEVICE_OPTION,
    DTYPE_OPTION,
    FORCE_VERDICT_OPTION,
    GENRM_MAX_NEW_TOKENS_OPTION,
    LIMIT_OPTION,
    MODE_OPTION,
    PAIR_BATCH_OPTION,
    SAMPLE_OPTION,
    TIMEOUT_OPTION,
    build_judge,
    judge_options,
    select_pairs,
)

eval_app = typer.Typer(help="Evaluate judges and policies.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

# The bootstrap holds resamples x pairs indices in memory: 10^6 resamples of 10^4 pairs is
# already 80 GB, so the bound is on their product (checked once the pairs are known) as well.
MIN_RESAMPLES, MAX_RESAMPLES = 100, 1_000_000
MAX_BOOTSTRAP_CELLS = 100_000_000

SUMMARY_KEYS = ("n", "accuracy", "ci_low", "ci_high", "position_consistency", "invalid_rate",
                "ece")


def run_judge(spec: str, pairs: list, *, seed: int, batch_size: int, options: dict[str, Any],
              writer: Any = None) -> list[dict]:
    """Judge every pair with one judge (progress bar on stderr); one record per pair."""
    from ..eval.judging import judge_pairs, progress_bar, show_retries

    records = []
    with build_judge(spec, **options) as judge:
        progress, task = progress_bar(len(pairs), f"judging with {spec}")
        show_retries(judge, progress, task, f"judging with {spec}")
        with progress:
            for record in judge_pairs(judge, pairs, seed=seed, spec=spec, batch_size=batch_size,
                                      on_batch=lambda b: progress.advance(task, len(b))):
                if writer is not None:
                    writer.write(record)
                records.append(record)
    return records


def saved_judgments(paths: list[Path], pairs: list, skip_invalid: bool = False) -> list[list[dict]]:
    """Records from ``quillrl judge`` / ``eval alignment --out`` files, one list per judge setting
    (judge, mode, swap, order seed), each in the order of ``pairs``. Every line is validated
    like a data file (``quillrl.data.read_judgments``), and one setting may not judge a pair
    twice, even across files. Every selected pair must have a record: scoring a judge on a
    subset of the pairs would compare it unfairly."""
    from ..data import read_judgments
    from ..errors import ConfigError, DataError

    runs: dict[tuple, dict[str, dict]] = {}
    first_seen: dict[tuple, str] = {}
    for path in paths:
        result = read_judgments(path, skip_invalid=skip_invalid)
        report_skipped(path, result)
        if not result.records:
            raise DataError("holds no judgments" + (
                f" ({len(result.skipped)} bad lines skipped)" if result.skipped else ""),
                path=str(path))
        for record in result.records:
            key = record.setting()
            if (key, record.id) in first_seen and first_seen[key, record.id] != str(path):
                raise DataError(f"judge {key[0]!r} (mode {key[1]}, swap {key[2]}, order seed "
                                f"{key[3]}) judged pair {record.id!r} in "
                                f"{first_seen[key, record.id]} too; give each judgment once",
                                path=str(path), field="id")
            first_seen[key, record.id] = str(path)
            runs.setdefault(key, {})[record.id] = record.to_json_dict()
    out = []
    for key, by_id in runs.items():
        missing = [p.id for p in pairs if p.id not in by_id]
        if missing:
            raise ConfigError(f"--judgments: judge {key[0]!r} (mode {key[1]}, swap {key[2]}) has "
                              f"no judgment for {len(missing)} of the {len(pairs)} pairs "
                              f"(first: {missing[0]}); finish it with `quillrl judge` (it "
                              "resumes) or select the pairs it judged (the same --limit, or "
                              "--sample and --seed)")
        out.append([by_id[p.id] for p in pairs])
    return out


def score(records: list[dict], pairs: list, *, seed: int, n_resamples: int,
          bootstrap_by: str) -> tuple[dict[str, Any], list]:
    """One judge's summary row and its reliability bins, from its records (in pair order)."""
    from ..eval.alignment import alignment_summary, reliability_bins
    from ..eval.hacking import length_preference
    from ..judges.baselines import word_count

    p_chosen = [r["p_chosen"] for r in records]
    groups = [p.prompt for p in pairs] if bootstrap_by == "prompt" else None
    row = alignment_summary(p_chosen, [r["flipped"] for r in records], groups=groups,
                            n_resamples=n_resamples, seed=seed)
    seconds = sum(r["cost"]["seconds"] for r in records)
    first = records[0]
    row.update(judge=first["judge"], mode=first["mode"], swap=first["swap"],
               **({"view": first["view"]} if "view" in first else {}),
               # share of decided verdicts naming slot A: far from 0.5 is position bias, since
               # the chosen text sits in A for about half the pairs
               a_share=_mean(float(r["verdict"] == "A") for r in records if r["verdict"]),
               mean_entropy=_mean(r["entropy"] for r in records),
               # Spearman's rho of p(chosen) with len(chosen) - len(rejected) in words: near 1 is
               # a judge that mostly counts words (docs/design.md, "Policy evaluation")
               length_preference=length_preference(
                   p_chosen, [word_count(p.chosen) - word_count(p.rejected) for p in pairs]),
               force_verdict=bool(first.get("force_verdict")),
               forced_rate=_mean(float(bool(r.get("forced")) and r["valid"]) for r in records),
               seconds_per_pair=seconds / len(records),
               completion_tokens=sum(r["cost"]["completion_tokens"] for r in records))
    return row, reliability_bins(p_chosen)


def paired_rows(runs: list[list[dict]], rows: list[dict], pairs: list, *, seed: int,
                n_resamples: int, bootstrap_by: str) -> list[dict[str, Any]]:
    """Each judge's accuracy minus the first judge's on the same pairs, with a paired bootstrap
    interval (by pair or by prompt, as the table's): two judges' separate intervals overlap far
    more often than their difference's interval contains 0, so "which judge is better" is read
    here, not from the table."""
    from ..eval.alignment import pair_scores
    from ..eval.winrate import paired_difference

    groups = [p.prompt for p in pairs] if bootstrap_by == "prompt" else [p.id for p in pairs]
    base = pair_scores([r["p_chosen"] for r in runs[0]])
    out = []
    for records, row in zip(runs[1:], rows[1:]):
        diff, low, high = paired_difference(pair_scores([r["p_chosen"] for r in records]), base,
                                            groups=groups, n_resamples=n_resamples, seed=seed)
        out.append({"judge": _row_label(row), "minus": _row_label(rows[0]), "accuracy_diff": diff,
                    "ci_low": low, "ci_high": high,
                    "excludes_0": None if low is None else bool(low > 0 or high < 0)})
    return out


def paired_table(diffs: list[dict[str, Any]]) -> str:
    """The paired differences as a markdown table (empty for a single judge)."""
    if not diffs:
        return ""
    lines = ["| judge | − judge | accuracy difference (95% CI, paired) | excludes 0 |",
             "|---|---|---:|---|"]
    lines += [f"| {d['judge']} | {d['minus']} | {100 * d['accuracy_diff']:+.1f} points "
              f"[{100 * d['ci_low']:+.1f}, {100 * d['ci_high']:+.1f}] | "
              f"{'yes' if d['excludes_0'] else 'no'} |" for d in diffs]
    return "\n".join(lines) + "\n"


def _row_label(row: dict[str, Any]) -> str:
    return f"`{row['judge']}`" + (f" ({row['mode']}, {_swap_label(row)})" if row["mode"] else "")


def _swap_label(row: dict[str, Any]) -> str:
    return "swap" if row["swap"] else "AB of swap run" if row.get("view") else "no swap"


def _mean(values) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


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
    sample: Optional[int] = SAMPLE_OPTION,
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
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help=SKIP_INVALID_HELP),
) -> None:
    """Agreement of judges with human preference labels.

    Accuracy with a 95% bootstrap CI (invalid judgments count as wrong), position consistency
    (--swap), invalid rate and expected calibration error, as a markdown table and, with
    --report-dir, a reliability diagram. A swap run adds a row for its AB order alone: the
    same judge without swap, at no extra cost."""
    from ..data import JsonlWriter
    from ..errors import ConfigError
    from ..eval.alignment_report import markdown_table, plot_accuracy, plot_reliability
    from ..eval.judging import first_order

    at_least("--batch-size", batch_size, 1)
    at_least("--resamples", resamples, MIN_RESAMPLES, MAX_RESAMPLES)
    check_choice("--bootstrap-by", bootstrap_by, ("pair", "prompt"))
    if not judges and not judgments:
        raise ConfigError("give at least one --judge SPEC or --judgments FILE")
    inputs = [pairs, *(judgments or [])]
    check_output_path(out, inputs=inputs)
    check_output_path(report_dir, option="--report-dir", inputs=inputs, directory=True)
    options = judge_options(mode, swap, max_new_tokens, device, dtype, backend_batch_size,
                            specs=list(judges or []), timeout=timeout, attempts=attempts,
                            force_verdict=force_verdict)
    selected = select_pairs(pairs, limit, sample, seed, skip_invalid=skip_invalid)
    if resamples * len(selected) > MAX_BOOTSTRAP_CELLS:
        raise ConfigError(f"--resamples {resamples} x {len(selected)} pairs needs more than "
                          f"{MAX_BOOTSTRAP_CELLS:,} bootstrap cells (about 0.8 GB of indices); use at most "
                          f"{MAX_BOOTSTRAP_CELLS // len(selected)} resamples")
    if bootstrap_by == "prompt" and len({p.prompt for p in selected}) < 2:
        raise ConfigError("--bootstrap-by prompt needs pairs with at least 2 different prompts; "
                          "these all share one (resample by pair instead)")
    runs = saved_judgments(list(judgments or []), selected, skip_invalid=skip_invalid)
    writer = JsonlWriter(out) if out is not None else None
    try:
        for spec in judges or []:
            runs.append(run_judge(spec, selected, seed=seed, batch_size=batch_size,
                                  options=options, writer=writer))
    finally:
        if writer is not None:
            writer.close()
    # a swap run also holds the judge's single-order answers (its AB order): scored beside it
    runs = [view for records in runs
            for view in ([records, [first_order(r) for r in records]]
                         if records[0]["swap"] and not no_first_order else [records])]
    rows, labels, curves = [], [], {}
    for records in runs:
        row, bins = score(records, selected, seed=seed, n_resamples=resamples,
                          bootstrap_by=bootstrap_by)
        rows.append(row)
        label = row["judge"] + (f" ({row['mode']}, {_swap_label(row)})" if row["mode"] else "")
        labels.append(label)
        curves[label] = bins

    diffs = paired_rows(runs, rows, selected, seed=seed, n_resamples=resamples,
                        bootstrap_by=bootstrap_by)
    table = markdown_table(rows) + ("\n" + paired_table(diffs) if diffs else "")
    files = {}
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        header = (f"# Judge agreement with human preferences\n\n`{pairs}`, {len(selected)} pairs, "
                  f"order and bootstrap seed {seed}, {resamples} resamples by {bootstrap_by}. "
                  "Invalid judgments count as wrong.\n\n")
        (report_dir / "alignment.md").write_text(
            header + table + "\n![accuracy](accuracy.png)\n\n![reliability](reliability.png)\n",
            encoding="utf-8")
        plot_reliability(curves, report_dir / "reliability.png")
        plot_accuracy({pairs.name: list(zip(labels, rows))}, report_dir / "accuracy.png")
        files = {"report": str(report_dir / "alignment.md"),
                 "reliability": str(report_dir / "reliability.png"),
                 "accuracy_plot": str(report_dir / "accuracy.png")}
    typer.echo(table)
    first = rows[0]
    print_summary({**{k: first[k] for k in SUMMARY_KEYS}, "judge": first["judge"],
                   "mode": first["mode"], "swap": first["swap"], "judges": rows,
                   "paired_differences": diffs,
                   **({"out": str(out)} if out is not None else {}), **files})
