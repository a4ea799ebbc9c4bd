"""The alignment report: a markdown table comparing judges, a reliability diagram and an
accuracy chart (PNGs).

"length ρ" is Spearman's ρ of the judge's p(chosen) with the chosen minus rejected length in
words: near +1 a judge that mostly counts words, near 0 one that does not.

Rendering only; the numbers come from :mod:`quillrl.eval.alignment`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..plotting import pyplot, save_figure
from .alignment import ReliabilityBin

TABLE_COLUMNS = ("judge", "mode", "swap", "n", "accuracy (95% CI)", "position consistency",
                 "verdicts for A", "invalid rate", "ECE", "length ρ", "s / pair")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def table_row(row: dict[str, Any]) -> list[str]:
    """One judge's summary row as table cells.

    >>> table_row({"judge": "baseline:length", "mode": None, "swap": False, "n": 4,
    ...            "accuracy": 0.75, "ci_low": 0.25, "ci_high": 1.0, "invalid_rate": 0.0,
    ...            "position_consistency": None, "a_share": 0.5, "ece": 0.25,
    ...            "length_preference": 0.8, "seconds_per_pair": 0.0})  # doctest: +NORMALIZE_WHITESPACE
    ['`baseline:length`', '—', 'no', '4', '75.0% [25.0, 100.0]', '—', '50.0%', '0.0%',
     '0.250', '+0.80', '0.000']
    """
    ci = ("" if row["ci_low"] is None
          else f" [{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}]")
    ece = "—" if row["ece"] is None else f"{row['ece']:.3f}"
    seconds = row.get("seconds_per_pair")
    swap = "yes" if row["swap"] else "AB of swap run" if row.get("view") else "no"
    mode = row["mode"] or "—"
    if row.get("force_verdict"):  # docs/design.md, "Forced verdict": say how many were closed
        mode += f", forced {_pct(row.get('forced_rate'))}"
    return [f"`{row['judge']}`", mode, swap,
            str(row["n"]), _pct(row["accuracy"]) + ci, _pct(row["position_consistency"]),
            _pct(row.get("a_share")), _pct(row["invalid_rate"]), ece,
            "—" if row.get("length_preference") is None else f"{row['length_preference']:+.2f}",
            "—" if seconds is None else f"{seconds:.3f}"]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A markdown table with one row per judge (see :data:`TABLE_COLUMNS`)."""
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |",
             "|" + "|".join("---" if i < 3 else "---:" for i in range(len(TABLE_COLUMNS))) + "|"]
    lines += ["| " + " | ".join(table_row(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plot_reliability(curves: dict[str, list[ReliabilityBin]], path: str | Path) -> Path:
    """Reliability diagram: per judge, accuracy against mean confidence in each non-empty bin,
    with the diagonal a calibrated judge lies on, and the share of judgments per bin below."""
    plt = pyplot()

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 6.0), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0.5, 1.0], [0.5, 1.0], color="grey", linestyle="--", linewidth=0.8,
             label="calibrated")
    for k, (name, bins) in enumerate(curves.items()):
        used = [b for b in bins if b.count]
        total = sum(b.count for b in used)
        if not used:
            continue
        top.plot([b.confidence for b in used], [b.accuracy for b in used], marker="o",
                 markersize=4, label=name)
        # judges' bars side by side inside each bin
        width = (bins[0].high - bins[0].low) / (len(curves) + 1)
        bottom.bar([b.low + width * (k + 0.5) for b in used], [b.count / total for b in used],
                   width=width, align="edge", label=name)
    top.set_ylim(-0.02, 1.02)
    top.set_ylabel("accuracy against the human label")
    top.set_title("Judge reliability (confidence = max(p, 1 − p))")
    top.grid(alpha=0.3)
    top.legend(fontsize=7)
    bottom.set_xlim(0.5, 1.0)
    bottom.set_xlabel("confidence in the verdict")
    bottom.set_ylabel("share")
    bottom.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_accuracy(panels: dict[str, list[tuple[str, dict[str, Any]]]], path: str | Path) -> Path:
    """Accuracy against the human label with its 95% CI, one horizontal bar per judge and one
    panel per pair set (``{set name: [(judge label, score row), ...]}``), beside the 50% a
    coin scores. A judge whose bar crosses the line cannot be told from chance on that set."""
    plt = pyplot()

    height = max(len(rows) for rows in panels.values())
    label_inches = 0.065 * max(len(label) for rows in panels.values() for label, _ in rows)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + label_inches + 0.6,
                                                      0.45 * height + 1.4),
                             sharey=False, squeeze=False)
    first = [label for label, _ in next(iter(panels.values()))]
    for k, (ax, (name, rows)) in enumerate(zip(axes[0], panels.items())):
        labels = [label for label, _ in rows]
        ys = list(range(len(rows)))[::-1]
        for y, (_, row) in zip(ys, rows):
            low, high = row["ci_low"], row["ci_high"]
            err = None if low is None else [[row["accuracy"] - low], [high - row["accuracy"]]]
            ax.errorbar(row["accuracy"], y, xerr=err, fmt="o", capsize=3, color=f"C{y % 10}")
        ax.axvline(0.5, color="grey", linestyle="--", linewidth=0.8)
        ax.set_yticks(ys)
        # a panel with the first panel's judges, in its order, leaves the names to the first
        ax.set_yticklabels(labels if k == 0 or labels != first else [""] * len(rows), fontsize=8)
        ax.set_xlim(0.0, 1.0)
        ax.set_xlabel("accuracy (95% CI)")
        ax.set_title(f"{name} (n = {rows[0][1]['n']})", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, path)


def write_alignment_report(report_dir: Path, scored: dict[str, Any], *, header: str,
                           name: str) -> dict[str, str]:
    """``alignment.md`` (``header`` under the title, then the tables), ``reliability.png`` and
    ``accuracy.png`` in ``report_dir``, from :func:`~quillrl.eval.alignment.score_runs`;
    returns their paths by summary key."""
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "alignment.md").write_text(
        f"# Judge agreement with human preferences\n\n{header}\n\n" + scored["table"]
        + "\n![accuracy](accuracy.png)\n\n![reliability](reliability.png)\n", encoding="utf-8")
    plot_reliability(scored["curves"], report_dir / "reliability.png")
    plot_accuracy({name: list(zip(scored["labels"], scored["rows"]))}, report_dir / "accuracy.png")
    return {"report": str(report_dir / "alignment.md"),
            "reliability": str(report_dir / "reliability.png"),
            "accuracy_plot": str(report_dir / "accuracy.png")}
