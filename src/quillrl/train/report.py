"""``report.md`` with PNG plots beside it, from a run's ``metrics.jsonl``.

Called at the end of every training run and by ``quillrl report DIR``. Plots group related
metrics (rewards, constraints, lengths, optimisation, judge) so a person sees a run's shape at
a glance; the table gives each metric's first, last, min and max.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import DataError

# figure file -> (title, metric keys); a key missing from a run is skipped, an empty figure too
PLOTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "rewards.png": ("Rewards", ("reward_mean", "writing_reward_mean", "shaped_reward_mean")),
    "constraints.png": ("Constraints", ("constraint_pass_rate", "violator_max_advantage")),
    "length.png": ("Completion length (tokens)", ("completion_length_mean",)),
    "optimisation.png": ("Optimisation", ("loss", "kl", "entropy", "grad_norm")),
    "judge.png": ("Judge", ("judge_invalid_rate", "accuracy", "invalid_rate", "confident_correct_share",
                            "entropy_correct", "entropy_wrong", "reward_std")),
    "genrm_spread.png": ("GenRM reward spread", ("shaped_reward_std", "frac_reward_zero_std", "entropy_spread",
                                                 "group_reward_std", "group_reward_std_unshaped")),
    "fit.png": ("Fit to the targets (SFT token accuracy, BT margin)", ("mean_token_accuracy", "margin")),
    "speed.png": ("Seconds per step", ("seconds",)),
}


def read_metrics(run_dir: str | Path, warnings: list[str] | None = None) -> list[dict]:
    """The rows of a run's ``metrics.jsonl``.

    A bad line (not UTF-8, not JSON, not an object) is a DataError naming the file and line,
    except the *last* line when it is cut off (no newline at its end): a run killed mid-write
    leaves one, and the report is made around it, with a warning appended to ``warnings``.
    """
    from ..data.jsonl import json_lines

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError("not a run directory" if run_dir.exists() else "no such run directory",
                        path=str(run_dir))
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        raise DataError(f"no metrics.jsonl in {run_dir}: is it a quillrl run directory?")
    if not path.is_file():
        raise DataError("is not a file", path=str(path))
    data = path.read_bytes()
    torn_line = data.count(b"\n") + 1 if data and not data.endswith(b"\n") else None
    rows = []
    for n, value in json_lines(path):
        problem = (value if isinstance(value, DataError) else None) or (
            None if isinstance(value, dict) else
            DataError(f"not a JSON object: got {type(value).__name__}", path=str(path), line=n))
        if problem is not None:
            if n == torn_line:
                if warnings is not None:
                    warnings.append(f"{path}:{n}: last line cut off (a run killed mid-write?); "
                                    "reported without it")
                continue
            raise problem
        rows.append(value)
    return rows


def _number(value) -> float | None:
    """A metric value as a float; None for a missing, non-numeric or NaN value (a bool is not
    a number here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:  # an integer beyond any float: infinite, with its sign
        return math.inf if value > 0 else -math.inf
    return None if math.isnan(value) else value


def _series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in rows:
        value = _number(row.get(key))
        if value is not None:
            step = _number(row.get("step"))
            xs.append(step if step is not None else len(xs))
            ys.append(value)
    return xs, ys


def non_numeric(rows: list[dict]) -> dict[str, int]:
    """Metrics with values that are neither numbers nor null, and how many: counted, so the
    report says a metric's plot and row leave some steps out instead of dropping them quietly."""
    counts: dict[str, int] = {}
    for row in rows:
        for key, value in row.items():
            if value is not None and _number(value) is None and not (
                    isinstance(value, float) and math.isnan(value)):
                counts[key] = counts.get(key, 0) + 1
    return counts


def plot_metrics(rows: list[dict], out_dir: Path, warnings: list[str] | None = None) -> list[str]:
    """Write the plots; a plot whose values matplotlib cannot lay out (a diverged run's 1e308:
    the axis span overflows) is left out with a warning, and the table still has them."""
    from ..plotting import pyplot, save_figure

    plt = pyplot()

    written = []
    for filename, (title, keys) in PLOTS.items():
        series = {k: _series(rows, k) for k in keys}
        series = {k: v for k, v in series.items() if v[0]}
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        for key, (xs, ys) in series.items():
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=key)
        if "violator_max_advantage" in series:
            ax.axhline(0.0, color="grey", linewidth=0.8, linestyle="--")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        try:
            save_figure(fig, out_dir / filename)
        except (ValueError, OverflowError) as exc:
            plt.close(fig)
            if warnings is not None:
                warnings.append(f"plot {filename} ({', '.join(series)}) left out: values too large "
                                f"to plot ({exc})")
            continue
        written.append(filename)
    return written


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def write_report(run_dir: str | Path, title: str = "Training run",
                 warnings: list[str] | None = None) -> Path:
    """Write ``report.md`` and its plots into ``run_dir``; return the report's path.

    ``warnings`` (if given) collects what the report worked around: a torn last line, values
    that are not numbers (their metric is reported over its numeric steps, and counted)."""
    run_dir = Path(run_dir)
    warnings = [] if warnings is None else warnings
    rows = read_metrics(run_dir, warnings)
    figures = plot_metrics(rows, run_dir, warnings) if rows else []
    odd = non_numeric(rows)
    keys = sorted({k for r in rows for k, v in r.items() if k != "step"
                   and (_number(v) is not None or k in odd)})
    for key, count in sorted(odd.items()):
        warnings.append(f"metric '{key}': {count} value(s) are not numbers; left out of its row and plot")
    lines = [f"# {title}", "", f"Run directory: `{run_dir}`; {len(rows)} logged steps.", ""]
    if rows:
        lines += ["| metric | first | last | min | max | non-numeric values |",
                  "|---|---|---|---|---|---|"]
        for key in keys:
            _, ys = _series(rows, key)
            first, last, low, high = (ys[0], ys[-1], min(ys), max(ys)) if ys else (None,) * 4
            lines.append(f"| {key} | {_fmt(first)} | {_fmt(last)} | {_fmt(low)} | {_fmt(high)} "
                         f"| {odd.get(key, 0)} |")
        lines.append("")
    lines += [f"> warning: {w}" for w in warnings] + ([""] if warnings else [])
    for fig in figures:
        lines += [f"![{fig[:-4]}]({fig})", ""]
    samples = run_dir / "completions.jsonl"
    if samples.exists():
        lines += [f"Sampled completions with their rewards: `{samples.name}`.", ""]
    out = run_dir / "report.md"
    if out.is_dir():
        raise DataError("is a directory; the report cannot be written", path=str(out))
    out.write_text("\n".join(lines), encoding="utf-8")
    return out
