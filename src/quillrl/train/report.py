"""``report.md`` with PNG plots beside it, from a run's ``metrics.jsonl``.

Called at the end of every training run and by ``quillrl report DIR``. Plots group related
metrics (rewards, constraints, lengths, optimisation, judge) so a person sees a run's shape at
a glance; the table gives each metric's first, last, min and max.
"""

from __future__ import annotations

import json
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


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise DataError(f"no metrics.jsonl in {run_dir}: is it a quillrl run directory?")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"not JSON: {exc.msg}", path=str(path), line=n) from None
    return rows


def _series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for row in rows:
        value = row.get(key)
        if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
            xs.append(row.get("step", len(xs)))
            ys.append(float(value))
    return xs, ys


def plot_metrics(rows: list[dict], out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
        fig.tight_layout()
        fig.savefig(out_dir / filename, dpi=110)
        plt.close(fig)
        written.append(filename)
    return written


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def write_report(run_dir: str | Path, title: str = "Training run") -> Path:
    """Write ``report.md`` and its plots into ``run_dir``; return the report's path."""
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)
    figures = plot_metrics(rows, run_dir) if rows else []
    keys = sorted({k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and k != "step"})
    lines = [f"# {title}", "", f"Run directory: `{run_dir}`; {len(rows)} logged steps.", ""]
    if rows:
        lines += ["| metric | first | last | min | max |", "|---|---|---|---|---|"]
        for key in keys:
            _, ys = _series(rows, key)
            if ys:
                lines.append(f"| {key} | {_fmt(ys[0])} | {_fmt(ys[-1])} | {_fmt(min(ys))} | {_fmt(max(ys))} |")
        lines.append("")
    for fig in figures:
        lines += [f"![{fig[:-4]}]({fig})", ""]
    samples = run_dir / "completions.jsonl"
    if samples.exists():
        lines += [f"Sampled completions with their rewards: `{samples.name}`.", ""]
    out = run_dir / "report.md"
    out.write_text("\n".join(lines))
    return out
