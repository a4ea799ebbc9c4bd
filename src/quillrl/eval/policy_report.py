"""The policy-evaluation report: ``report.md`` and its PNG plots (rendering only; the numbers
come from ``constraint_rates``, ``winrate`` and ``hacking``).

Plots: pass rate per constraint family with 95% intervals, one bar per side
(:func:`plot_pass_rates`, also ``eval constraints --report-dir``); word-count histograms of both
policies (:func:`plot_lengths`); the win rate beside the LC and SC win rates, with their intervals
(:func:`plot_win_rate`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..plotting import pyplot, save_figure

# The one line every report carries: what its two signals can and cannot show.
SIGNAL_NOTE = ("The writing reward and win rate from a 135M judge (the embedded model) are near "
               "noise (its agreement with human story preferences is near chance, docs/results.md); "
               "the constraint pass rates are exact rule checks.")


def plot_pass_rates(sides: Mapping[str, Mapping[str, Any]], path: str | Path,
                    title: str = "Constraint pass rate per family (95% CI by task)") -> Path:
    """Grouped bars: for each family (and "all"), each side's pass rate with its interval.
    ``sides`` maps a label to a :func:`~quillrl.eval.constraint_rates.pass_rates` summary."""
    plt = pyplot()
    families = ["all"] + sorted({f for s in sides.values() for f in s["by_family"]})
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(families) * max(1, len(sides)) / 2, 3.6))
    width = 0.8 / max(1, len(sides))
    for k, (label, summary) in enumerate(sides.items()):
        cells = [summary] + [summary["by_family"].get(f) for f in families[1:]]
        xs, ys, lows, highs = [], [], [], []
        for i, cell in enumerate(cells):
            if cell and cell["pass_rate"] is not None:
                xs.append(i + (k - (len(sides) - 1) / 2) * width)
                ys.append(cell["pass_rate"])
                lows.append(cell["pass_rate"] - cell["ci_low"])
                highs.append(cell["ci_high"] - cell["pass_rate"])
        ax.bar(xs, ys, width=width, yerr=[lows, highs], capsize=3, label=label)
    ax.set_xticks(range(len(families)), [f"{f}\n(n={_n(sides, f)})" for f in families])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("pass rate")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if len(sides) > 1:
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def _n(sides: Mapping[str, Mapping[str, Any]], family: str) -> str:
    first = next(iter(sides.values()))
    cell = first if family == "all" else first["by_family"].get(family)
    return str(cell["n"]) if cell else "0"


def plot_lengths(words: Mapping[str, Sequence[int]], path: str | Path) -> Path:
    """Overlaid word-count histograms, one per side, on shared bins."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    top = max([max(w) for w in words.values() if len(w)] + [1])
    bins = list(range(0, top + max(1, top // 20) + 1, max(1, top // 20)))
    for label, w in words.items():
        mean = sum(w) / len(w) if len(w) else float("nan")
        ax.hist(list(w), bins=bins, alpha=0.5, label=f"{label} (mean {mean:.1f})")
    ax.set_xlabel("words per response")
    ax.set_ylabel("responses")
    ax.set_title("Response length", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_win_rate(summary: Mapping[str, Any], path: str | Path, a: str = "A", b: str = "B") -> Path:
    """The win rate, the length-controlled (LC) and the style-controlled (SC) win rates, each
    with its 95% interval where the summary has one, against the 50% line (top to bottom)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 2.4))
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=0.8)
    rows = [("win_rate", "ci_low", "ci_high", "o",
             f"win rate {pct(summary.get('win_rate'))}\n(n={summary.get('n')}, 95% CI)"),
            ("lc_win_rate", "lc_ci_low", "lc_ci_high", "s", f"LC win rate\n{pct(summary.get('lc_win_rate'))}"),
            ("sc_win_rate", "sc_ci_low", "sc_ci_high", "D", f"SC win rate\n{pct(summary.get('sc_win_rate'))}")]
    for y, (key, low, high, marker, _) in zip((2, 1, 0), rows):
        w = summary.get(key)
        if w is None:
            continue
        if summary.get(low) is not None and summary.get(high) is not None:
            ax.errorbar([w], [y], xerr=[[w - summary[low]], [summary[high] - w]], fmt=marker, capsize=4)
        else:
            ax.plot([w], [y], marker)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.6, 2.6)
    ax.set_yticks([2, 1, 0], [label for *_, label in rows], fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel(f"{a} against {b} (ties count half; invalid left out: {summary.get('invalid', 0)})")
    return save_figure(fig, path)


def pct(value: float | None) -> str:
    """A share as a percentage with one decimal, ``—`` for none.

    >>> pct(0.4567), pct(None)
    ('45.7%', '—')
    """
    return "—" if value is None else f"{100 * value:.1f}%"


def interval(value: float | None, low: float | None, high: float | None) -> str:
    """``value [low, high]`` in percent.

    >>> interval(0.5, 0.25, 0.75)
    '50.0% [25.0, 75.0]'
    """
    if value is None:
        return "—"
    return pct(value) + ("" if low is None else f" [{100 * low:.1f}, {100 * high:.1f}]")


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def policy_report(summary: Mapping[str, Any], details: Mapping[str, Any], base: str, trained: str,
                  plots: Mapping[str, str]) -> str:
    """``report.md`` of ``eval policy``: the headline table, per family and per constraint id,
    the hacking signals and the plots. ``details`` holds ``rates_base``, ``rates_trained``,
    ``by_constraint_diff`` and ``head_to_head`` (with its ``hacking``)."""
    h = details["head_to_head"]["hacking"]
    lines = [f"# Policy evaluation: `{trained}` (trained) against `{base}` (base)", "",
             f"> {SIGNAL_NOTE}", "",
             f"{summary['n']} paired responses on {summary['tasks']} tasks "
             f"({summary['no_constraints']} without constraints: in the win rate, not in pass "
             f"rates); judge `{summary['judge']}`. Intervals are 95% bootstrap by task; the "
             "pass-rate difference is paired (trained − base on the same task and sample).", "",
             "| | base | trained | trained − base |", "|---|---:|---:|---:|",
             f"| constraint pass rate | {interval(summary['pass_rate_base'], *details['ci_base'])} | "
             f"{interval(summary['pass_rate_trained'], *details['ci_trained'])} | "
             f"{interval(summary['pass_rate_diff'], summary['diff_ci_low'], summary['diff_ci_high'])} |",
             f"| mean words | {_num(summary['mean_words_base'], 1)} | {_num(summary['mean_words_trained'], 1)} | "
             f"{_num(h['change'].get('mean_words'), 1)} |",
             f"| clipped at the token limit | {pct(h['b']['clipped_share'])} | {pct(h['a']['clipped_share'])} | "
             f"{_num(h['change'].get('clipped_share'))} |",
             f"| distinct-2 / distinct-3 | {_num(h['b']['distinct_2'])} / {_num(h['b']['distinct_3'])} | "
             f"{_num(h['a']['distinct_2'])} / {_num(h['a']['distinct_3'])} | "
             f"{_num(h['change'].get('distinct_2'))} / {_num(h['change'].get('distinct_3'))} |", "",
             f"Win rate of trained over base: **{interval(summary['win_rate'], summary['ci_low'], summary['ci_high'])}** "
             f"({h_count(details['head_to_head'])}); length-controlled: {pct(summary['lc_win_rate'])}; "
             f"style-controlled: {pct(summary.get('sc_win_rate'))}; "
             f"Spearman ρ of the judge's p with the length difference: "
             f"{_num(h['length_preference_spearman'])}.", "",
             "## Pass rate per constraint id", "",
             "| constraint | n | base | trained | trained − base (paired) |", "|---|---:|---:|---:|---:|"]
    for cid, d in details["by_constraint_diff"].items():
        rb, rt = details["rates_base"]["by_constraint"][cid], details["rates_trained"]["by_constraint"][cid]
        lines.append(f"| `{cid}` | {rb['n']} | {pct(rb['pass_rate'])} | {pct(rt['pass_rate'])} | "
                     f"{interval(*d)} |")
    lines += ["", *(f"![{name}]({file})" for name, file in plots.items()), ""]
    return "\n".join(lines)


def h_count(h: Mapping[str, Any]) -> str:
    """``"W wins, T ties, L losses, I invalid"``."""
    return f"{h['wins']} wins, {h['ties']} ties, {h['losses']} losses, {h['invalid']} invalid"
