"""``quillrl eval policy``'s work: a trained policy against its base on held-out tasks.

From the two policies' responses files: constraint pass rates with the paired before/after
difference, the head-to-head win rate (trained as A, base as B) with its LC win rate and the
reward-hacking signals, and ``report.md`` with plots (docs/design.md, "Policy evaluation").
Generating the responses is ``quillrl.eval.generate``; judging is ``quillrl.eval.judging``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.readers import read_responses
from ..errors import ConfigError
from ..rewards.style import word_count
from .constraint_rates import pass_rates, verdict_rows
from .headtohead import before_after, head_to_head, pair_responses
from .judging import JudgeRun, judge_units
from .policy_report import plot_lengths, plot_pass_rates, plot_win_rate, policy_report

__all__ = ["JudgeRun", "compare_policies", "generate_sides", "write_summary"]


def generate_sides(specs: dict[str, str], tasks: list, out_dir: Path, **sampling: Any,
                   ) -> dict[str, Path]:
    """Each side's responses (``{"base": spec, "trained": spec}``) to ``tasks`` in
    ``out_dir/responses-<side>.jsonl``, resumed (``quillrl.eval.generate.generate_responses``
    with ``sampling``); returns the files by side."""
    import sys

    from .generate import generate_responses

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for side, spec in specs.items():
        files[side] = out_dir / f"responses-{side}.jsonl"
        print(f"{side}: {spec}", file=sys.stderr)
        generate_responses(spec, tasks, files[side], **sampling)
    return files


def write_summary(out_dir: Path, summary: dict[str, Any], details: dict[str, Any]) -> Path:
    """``out_dir/summary.json``: the summary with every detail behind it."""
    import json

    path = out_dir / "summary.json"
    path.write_text(json.dumps({**summary, "details": details}, indent=1, default=str) + "\n")
    return path


def compare_policies(task_list: list, files: dict[str, Path], run: JudgeRun, *, out_dir: Path,
                     n_resamples: int, names: dict[str, str], free_text_verifier: Any = None,
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Constraints, before/after, win rate (trained as A, base as B) and report, from the two
    responses files; the judgments go to ``out_dir/judgments.jsonl`` (resumed: Ctrl-C leaves
    every finished judgment there and propagates). ``free_text_verifier`` judges ``free_text``
    constraints, as in training (:func:`~quillrl.constraints.refuse_unjudged_free_text`)."""
    from ..constraints import refuse_unjudged_free_text

    refuse_unjudged_free_text(task_list, free_text_verifier, source="the tasks",
                              setting="free_text_verifier")
    seed = run.seed
    units, counts = pair_responses(task_list, read_responses(files["trained"]).records,
                                   read_responses(files["base"]).records)
    if not units:
        raise ConfigError(f"{files['trained']} and {files['base']} share no (task id, sample)")
    rows = {side: verdict_rows([(u["task"], u[key]) for u in units],
                               free_text_verifier=free_text_verifier)
            for side, key in (("trained", "a"), ("base", "b"))}
    rates = {side: pass_rates(r, n_resamples=n_resamples, seed=seed) for side, r in rows.items()}
    diff = before_after(units, rows["trained"], rows["base"], n_resamples=n_resamples, seed=seed)
    records, _ = judge_units(units, run, judgments=out_dir / "judgments.jsonl",
                             catch_interrupt=False)
    h2h = head_to_head(units, records, n_resamples=n_resamples, seed=seed,
                       rows_a=rows["trained"], rows_b=rows["base"])
    plots = {"lengths": "lengths.png", "pass rate per family": "pass_rates.png",
             "win rate": "win_rate.png"}
    plot_lengths({"base": [word_count(u["b"].response) for u in units],
                  "trained": [word_count(u["a"].response) for u in units]}, out_dir / "lengths.png")
    plot_pass_rates({"base": rates["base"], "trained": rates["trained"]}, out_dir / "pass_rates.png")
    plot_win_rate(h2h, out_dir / "win_rate.png", a="trained", b="base")
    summary = {
        "n": len(units), "pass_rate_base": rates["base"]["pass_rate"],
        "pass_rate_trained": rates["trained"]["pass_rate"], "pass_rate_diff": diff["diff"],
        "diff_ci_low": diff["ci_low"], "diff_ci_high": diff["ci_high"],
        "win_rate": h2h["win_rate"], "ci_low": h2h["ci_low"], "ci_high": h2h["ci_high"],
        "lc_win_rate": h2h["lc_win_rate"], "sc_win_rate": h2h.get("sc_win_rate"),
        "mean_words_base": h2h["mean_words_b"],
        "mean_words_trained": h2h["mean_words_a"], "report": str(out_dir / "report.md"),
        "tasks": counts["tasks_judged"], "no_constraints": rates["base"]["no_constraints"],
        "undecided_base": rates["base"]["undecided"], "undecided_trained": rates["trained"]["undecided"],
        "invalid": h2h["invalid"], "clipped_share_base": h2h["hacking"]["b"]["clipped_share"],
        "clipped_share_trained": h2h["hacking"]["a"]["clipped_share"], "judge": run.spec,
        "by_family": {side: {k: v["pass_rate"] for k, v in r["by_family"].items()}
                      for side, r in rates.items()},
        **counts}
    details = {"rates_base": rates["base"], "rates_trained": rates["trained"],
               "ci_base": (rates["base"]["ci_low"], rates["base"]["ci_high"]),
               "ci_trained": (rates["trained"]["ci_low"], rates["trained"]["ci_high"]),
               "by_constraint_diff": diff["by_constraint"], "head_to_head": h2h}
    (out_dir / "report.md").write_text(policy_report(summary, details, names["base"],
                                                     names["trained"], plots), encoding="utf-8")
    return summary, details
