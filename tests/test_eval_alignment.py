"""Agreement metrics (fixed numbers, bootstrap and ECE properties) and `quillrl eval alignment`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from quillrl.cli import app
from quillrl.eval.alignment import (
    accuracy,
    alignment_summary,
    bootstrap_ci,
    expected_calibration_error,
    invalid_rate,
    p_chosen_of,
    pair_scores,
    reliability_bins,
)
from quillrl.judges.placement import first_slot

runner = CliRunner()


def test_scores_accuracy_and_invalid_rate_fixed_numbers():
    p = [0.9, 0.6, 0.4, 0.5, None, 1.0, 0.0, None]
    assert pair_scores(p).tolist() == [1, 1, 0, 0.5, 0, 1, 0, 0]
    assert accuracy(p) == pytest.approx(3.5 / 8)  # invalid counts as wrong, a tie as half
    assert invalid_rate(p) == 0.25
    assert accuracy([]) is None and invalid_rate([]) is None


def test_p_chosen_follows_the_slot():
    assert p_chosen_of(0.7, "A") == 0.7
    assert p_chosen_of(0.7, "B") == pytest.approx(0.3)
    with pytest.raises(ValueError, match="'A' or 'B'"):
        p_chosen_of(0.7, "C")


@pytest.mark.parametrize("seed", range(5))
def test_bootstrap_ci_contains_the_estimate_and_is_seeded(seed):
    scores = np.random.default_rng(100 + seed).integers(0, 2, size=60).astype(float)
    low, high = bootstrap_ci(scores, seed=seed)
    assert low <= scores.mean() <= high
    assert 0.0 <= low < high <= 1.0
    assert bootstrap_ci(scores, seed=seed) == (low, high)
    # a 95% interval of a mean of 60 coin flips is about ±0.125 wide: not a degenerate one
    assert 0.15 < high - low < 0.35


def test_bootstrap_ci_fixed_numbers_and_seed_dependence():
    scores = [1, 0, 1, 1, 0, 1, 1, 1]
    assert bootstrap_ci(scores, seed=0) == (0.375, 1.0)
    assert bootstrap_ci(scores, seed=0, confidence=0.5) != (0.375, 1.0)
    assert bootstrap_ci([], seed=0) == (None, None)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(scores, confidence=1.5)


def test_cluster_bootstrap_of_singletons_is_the_pair_bootstrap():
    scores = np.random.default_rng(7).random(40)
    groups = [f"g{i:02d}" for i in range(40)]  # sorted order = index order, one pair each
    by_group = bootstrap_ci(scores, groups=groups, seed=3)
    assert by_group == pytest.approx(bootstrap_ci(scores, seed=3))


def test_cluster_bootstrap_widens_with_correlated_groups():
    # two prompts, one judged all right, one all wrong: pairs are not independent
    scores = [1.0] * 20 + [0.0] * 20
    groups = ["p1"] * 20 + ["p2"] * 20
    pair_low, pair_high = bootstrap_ci(scores, seed=0)
    low, high = bootstrap_ci(scores, groups=groups, seed=0)
    assert (low, high) == (0.0, 1.0)
    assert high - low > pair_high - pair_low


def test_reliability_bins_edges():
    bins = reliability_bins([0.5, 1.0, 0.0, 0.74, 0.26], n_bins=2)
    assert [(b.low, b.high) for b in bins] == [(0.5, 0.75), (0.75, 1.0)]
    assert [b.count for b in bins] == [3, 2]  # 0.5, 0.74, 0.26 | 1.0 and 0.0 (confidence 1)
    assert bins[0].confidence == pytest.approx((0.5 + 0.74 + 0.74) / 3)
    assert bins[0].accuracy == pytest.approx((0.5 + 1 + 0) / 3)
    assert bins[1].confidence == 1.0 and bins[1].accuracy == 0.5


def test_ece_fixed_numbers():
    # bin [0.9, 0.95): conf 0.9, 0.9 (p=0.1 is confidence 0.9, wrong) -> acc 0.5, gap 0.4
    # bin [0.6, 0.65): conf 0.6, right -> gap 0.4; the invalid judgment is left out
    assert expected_calibration_error([0.9, 0.1, 0.6, None]) == pytest.approx((2 * 0.4 + 0.4) / 3)
    perfect = [0.8] * 8 + [0.2] * 2  # 80% sure and right 80% of the time
    assert expected_calibration_error(perfect) == pytest.approx(0.0)
    assert expected_calibration_error([None, None]) is None


def test_alignment_summary_fields():
    s = alignment_summary([0.9, 0.2, None, 0.7], [False, True, None, False], seed=1)
    assert s["n"] == 4 and s["accuracy"] == 0.5 and s["invalid_rate"] == 0.25
    assert s["position_consistency"] == pytest.approx(2 / 3)
    assert s["ci_low"] <= s["accuracy"] <= s["ci_high"]
    assert alignment_summary([0.9], seed=0)["position_consistency"] is None


# ---------------------------------------------------------------- CLI end to end

def write_pairs(path, n=12):
    """Pairs whose chosen text is longer in the first two thirds and shorter in the rest."""
    rows = []
    for i in range(n):
        long, short = "word " * (20 + i), "word " * 5
        chosen, rejected = (long, short) if i < 2 * n // 3 else (short, long)
        rows.append({"id": f"p{i:02d}", "prompt": f"Write story {i}.", "chosen": chosen,
                     "rejected": rejected})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def last_json(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_eval_alignment_baselines_end_to_end(tmp_path):
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    report = tmp_path / "report"
    result = runner.invoke(app, ["eval", "alignment", "--pairs", str(pairs),
                                 "--judge", "baseline:length", "--judge", "baseline:random",
                                 "--report-dir", str(report), "--out", str(tmp_path / "j.jsonl"),
                                 "--resamples", "500", "--batch-size", "5"])
    assert result.exit_code == 0, result.output
    summary = last_json(result)
    assert {"n", "accuracy", "ci_low", "ci_high", "position_consistency", "invalid_rate",
            "ece"} <= set(summary)
    assert summary["judge"] == "baseline:length" and summary["n"] == 12
    assert summary["accuracy"] == pytest.approx(8 / 12)  # longer wins on 8 of 12
    assert summary["ece"] == pytest.approx(1 - 8 / 12)  # always certain
    assert summary["invalid_rate"] == 0.0 and summary["position_consistency"] is None
    assert summary["ci_low"] <= summary["accuracy"] <= summary["ci_high"]
    assert [row["judge"] for row in summary["judges"]] == ["baseline:length", "baseline:random"]
    assert (report / "reliability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["accuracy_plot"] == str(report / "accuracy.png")
    assert (report / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![accuracy](accuracy.png)" in (report / "alignment.md").read_text()
    table = (report / "alignment.md").read_text()
    assert "| `baseline:length` |" in table and "| `baseline:random` |" in table
    assert "66.7%" in table and "66.7%" in result.stdout  # the table is printed too
    lines = [json.loads(x) for x in (tmp_path / "j.jsonl").read_text().splitlines()]
    assert len(lines) == 24
    assert {x["judge"] for x in lines} == {"baseline:length", "baseline:random"}
    # same seed, same presentation order and interval
    again = runner.invoke(app, ["eval", "alignment", "--pairs", str(pairs), "--judge",
                                "baseline:length", "--resamples", "500"])
    assert {k: last_json(again)[k] for k in ("ci_low", "ci_high")} == \
        {k: summary[k] for k in ("ci_low", "ci_high")}


def test_eval_alignment_paired_difference_and_length_preference(tmp_path):
    # 60 pairs: chosen is longer in 40. baseline:length is right on those 40 and wrong on the
    # other 20; a "short" judge (the same, backwards) is its mirror image, so their accuracy
    # difference is exactly 1/3 (40/60 - 20/60), with a paired standard error of about 0.12
    pairs = write_pairs(tmp_path / "pairs.jsonl", n=60)
    saved = tmp_path / "short.jsonl"
    length = runner.invoke(app, ["eval", "alignment", "--pairs", str(pairs), "--judge",
                                 "baseline:length", "--out", str(saved), "--resamples", "500"])
    assert length.exit_code == 0, length.output
    rows = [json.loads(x) for x in saved.read_text().splitlines()]
    for row in rows:  # the mirror judge: it prefers whichever the length judge did not
        row.update(judge="short", p_chosen=1 - row["p_chosen"], p_a=1 - row["p_a"])
    saved.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(app, ["eval", "alignment", "--pairs", str(pairs), "--judge",
                                 "baseline:length", "--judgments", str(saved), "--resamples", "500"])
    assert result.exit_code == 0, result.output
    summary = last_json(result)
    by_judge = {r["judge"]: r for r in summary["judges"]}
    rho = by_judge["baseline:length"]["length_preference"]
    assert rho > 0.5 and by_judge["short"]["length_preference"] == pytest.approx(-rho)
    (diff,) = summary["paired_differences"]
    assert diff["minus"] == "`short`" and diff["judge"] == "`baseline:length`"
    assert diff["accuracy_diff"] == pytest.approx(1 / 3)
    assert diff["ci_low"] > 0 and diff["excludes_0"] is True
    assert "+33.3 points" in result.stdout and "length ρ" in result.stdout


def test_eval_alignment_limit_and_errors(tmp_path):
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    result = runner.invoke(app, ["eval", "alignment", "--pairs", str(pairs), "--judge",
                                 "baseline:length", "--limit", "3"])
    assert result.exit_code == 0 and last_json(result)["n"] == 3
    bad = runner.invoke(app, ["eval", "alignment", "--pairs", str(pairs), "--judge", "nope"])
    assert bad.exit_code == 2 and "accepted forms" in bad.stderr.lower()
    bad = runner.invoke(app, ["eval", "alignment", "--pairs", str(pairs), "--judge",
                              "baseline:length", "--bootstrap-by", "author"])
    assert bad.exit_code == 2 and "pair, prompt" in bad.stderr


def test_eval_alignment_scores_saved_judgments(tmp_path):
    pairs, saved = write_pairs(tmp_path / "pairs.jsonl"), tmp_path / "length.jsonl"
    judged = runner.invoke(app, ["judge", "--pairs", str(pairs), "--judge", "baseline:length",
                                 "--out", str(saved), "--limit", "9"])
    assert judged.exit_code == 0, judged.output
    args = ["eval", "alignment", "--pairs", str(pairs), "--judgments", str(saved),
            "--judge", "baseline:random", "--resamples", "300"]
    result = runner.invoke(app, [*args, "--limit", "9"])
    assert result.exit_code == 0, result.output
    summary = last_json(result)
    assert [r["judge"] for r in summary["judges"]] == ["baseline:length", "baseline:random"]
    assert summary["n"] == 9 and summary["accuracy"] == pytest.approx(8 / 9)
    rerun = runner.invoke(app, ["eval", "alignment", "--pairs", str(pairs), "--judge",
                                "baseline:length", "--resamples", "300", "--limit", "9"])
    assert last_json(rerun)["judges"][0] == summary["judges"][0]  # same numbers either way
    missing = runner.invoke(app, args)  # all 12 pairs, but only 9 were judged
    assert missing.exit_code == 2 and "no judgment for 3 of the 12 pairs" in missing.stderr
    nothing = runner.invoke(app, ["eval", "alignment", "--pairs", str(pairs)])
    assert nothing.exit_code == 2 and "--judgments" in nothing.stderr


def test_eval_alignment_genrm_on_the_tiny_model(tmp_path, tiny_model_dir):
    pairs = write_pairs(tmp_path / "pairs.jsonl", n=6)
    report = tmp_path / "report"
    spec = f"genrm:local:{tiny_model_dir}"
    result = runner.invoke(app, ["eval", "alignment", "--pairs", str(pairs), "--judge", spec,
                                 "--mode", "verdict", "--swap", "--device", "cpu",
                                 "--report-dir", str(report), "--resamples", "200"])
    assert result.exit_code == 0, result.output
    summary = last_json(result)
    assert summary["n"] == 6 and summary["judge"] == spec
    assert summary["mode"] == "verdict" and summary["swap"] is True
    assert summary["invalid_rate"] == 0.0  # verdict mode reads p(A) directly: always valid
    assert 0.0 <= summary["position_consistency"] <= 1.0  # swap gives it
    assert 0.0 <= summary["ece"] <= 0.5 and summary["ci_low"] <= summary["accuracy"]
    assert summary["judges"][0]["seconds_per_pair"] > 0
    # the swap run's AB order is scored too: the judge without swap, at no extra cost
    single = summary["judges"][1]
    assert (single["judge"], single["swap"], single["position_consistency"]) == (spec, False, None)
    assert single["seconds_per_pair"] == pytest.approx(summary["judges"][0]["seconds_per_pair"] / 2)
    assert (report / "reliability.png").stat().st_size > 1000
    table = (report / "alignment.md").read_text()
    assert f"| `{spec}` | verdict | yes | 6 |" in table
    assert f"| `{spec}` | verdict | AB of swap run | 6 |" in table
    # reasoning with an 8-token budget cannot finish the format: every judgment is invalid and
    # counts as wrong, and the invalid rate says why
    result = runner.invoke(app, ["eval", "alignment", "--pairs", str(pairs), "--judge", spec,
                                 "--mode", "reasoning", "--max-new-tokens", "8",
                                 "--device", "cpu", "--resamples", "200"])
    assert result.exit_code == 0, result.output
    summary = last_json(result)
    assert summary["invalid_rate"] == 1.0 and summary["accuracy"] == 0.0 and summary["ece"] is None


def test_presentation_order_is_balanced_and_seeded():
    slots = [first_slot(f"storyer-{i:04d}") for i in range(400)]
    assert 160 < slots.count("A") < 240
    assert slots == [first_slot(f"storyer-{i:04d}", seed=0) for i in range(400)]
    assert slots != [first_slot(f"storyer-{i:04d}", seed=1) for i in range(400)]


def test_plot_accuracy_draws_each_judge_with_its_interval(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from quillrl.eval.alignment_report import plot_accuracy

    row = {"n": 10, "accuracy": 0.6, "ci_low": 0.3, "ci_high": 0.9}
    drawn = []
    real_savefig = plt.Figure.savefig

    def keep(fig, *args, **kwargs):  # read the axes the function drew before it closes them
        drawn.append([(ax.get_title(), {y: t.get_text() for y, t in zip(ax.get_yticks(),
                                                                         ax.get_yticklabels())},
                       [line.get_xydata().tolist() for line in ax.lines]) for ax in fig.axes])
        return real_savefig(fig, *args, **kwargs)

    plt.Figure.savefig = keep
    try:
        path = plot_accuracy({"set one": [("judge x", row), ("judge y", {**row, "ci_low": None})],
                              "set two": [("judge x", {**row, "accuracy": 0.2, "ci_low": 0.1})]},
                             tmp_path / "a" / "accuracy.png")
    finally:
        plt.Figure.savefig = real_savefig
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (first, second), = drawn
    assert first[0] == "set one (n = 10)" and first[1] == {1: "judge x", 0: "judge y"}  # top down
    points = [xy for line in first[2] for xy in line]
    assert [0.6, 1.0] in points and [0.6, 0.0] in points  # both judges' points
    assert [0.3, 1.0] in points and [0.9, 1.0] in points  # judge x's interval ends
    assert second[0] == "set two (n = 10)" and [0.2, 0.0] in [xy for line in second[2] for xy in line]
    assert second[1] == {0: "judge x"}  # other judges than the first panel's: named again
