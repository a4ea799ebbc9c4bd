"""The head-to-head statistics on fixed numbers: win rate with ties and invalid judgments, the
length-controlled win rate on synthetic data with a known answer, the paired interval, the
hacking signals, and the one A/B placement function."""

import numpy as np
import pytest

from quillrl.constraints import REGISTRY, constraint_family
from quillrl.eval.hacking import distinct_n, hacking_signals, length_preference, side_signals
from quillrl.eval.winrate import lc_win_rate, outcomes, paired_difference, win_rate_summary
from quillrl.judges.placement import first_slot


def test_win_rate_counts_ties_half_and_leaves_invalid_out():
    p = [0.9, 0.6, 0.5, 0.5, 0.2, None, None, 0.51]
    r = win_rate_summary(p, [10] * 8, [10] * 8, groups=[f"t{i}" for i in range(8)])
    assert (r["wins"], r["ties"], r["losses"], r["invalid"], r["n"]) == (3, 2, 1, 2, 6)
    assert r["win_rate"] == pytest.approx((3 + 0.5 * 2) / 6)
    assert r["ci_low"] <= r["win_rate"] <= r["ci_high"]
    # equal lengths everywhere: the length term is void, LC is the (lightly shrunk) win rate
    assert r["lc_win_rate"] == pytest.approx(r["win_rate"], abs=0.01)


def test_swap_debiased_probabilities_decide_the_outcome():
    from quillrl.judges.stats import swap_debias

    # a judge that always says "slot A" with 0.8 has no preference once debiased: a tie
    assert outcomes([swap_debias(0.8, 0.8)])[0].tolist() == [0.5]
    # A preferred in both orders: a win; preferred in one order only, more weakly: still a win
    assert outcomes([swap_debias(0.9, 0.2), swap_debias(0.7, 0.6)])[0].tolist() == [1.0, 1.0]


def test_win_rate_interval_resamples_prompts_not_pairs():
    # two prompts, each with 10 pairs all won or all lost: by prompt the interval spans 0..1
    p = [1.0] * 10 + [0.0] * 10
    groups = ["a"] * 10 + ["b"] * 10
    r = win_rate_summary(p, [1] * 20, [1] * 20, groups=groups)
    assert r["win_rate"] == 0.5 and (r["ci_low"], r["ci_high"]) == (0.0, 1.0)


@pytest.mark.parametrize("theta, phi", [(0.0, 2.0), (0.8, 1.5), (-0.6, -1.0)])
def test_lc_fit_recovers_the_win_rate_at_equal_length(theta, phi):
    rng = np.random.default_rng(0)
    delta = rng.normal(0, 40, size=20000)
    prob = 1 / (1 + np.exp(-(theta + phi * np.tanh(delta / delta.std()))))
    s = (rng.random(delta.size) < prob).astype(float)
    assert lc_win_rate(s, delta) == pytest.approx(1 / (1 + np.exp(-theta)), abs=0.02)
    # and the raw win rate differs from it when length matters and the lengths are skewed
    skew = delta + 30
    prob = 1 / (1 + np.exp(-(theta + phi * np.tanh(skew / skew.std()))))
    s = (rng.random(delta.size) < prob).astype(float)
    assert lc_win_rate(s, skew) == pytest.approx(1 / (1 + np.exp(-theta)), abs=0.03)


def test_lc_fit_stays_finite_when_length_separates_the_outcomes():
    # every longer A wins, every shorter loses: unpenalised, φ would run to infinity
    lc = lc_win_rate([1, 1, 1, 1, 0, 0], [3, 5, 8, 9, -4, -6])
    assert 0.0 < lc < 1.0 and np.isfinite(lc)


def test_paired_difference_interval_excludes_zero_only_for_a_consistent_gain():
    groups = [f"t{i // 2}" for i in range(40)]  # 20 tasks, 2 samples each
    trained = [1.0] * 30 + [0.0] * 10
    base = [0.0] * 20 + [1.0] * 10 + [0.0] * 10
    d, low, high = paired_difference(trained, base, groups=groups, seed=0)
    assert d == pytest.approx(0.5) and low > 0
    # the same pass rates with the gains cancelled by losses on other tasks: 0 stays inside
    base2 = [0.0] * 10 + [1.0] * 20 + [1.0] * 10
    trained2 = [1.0] * 10 + [0.0] * 10 + [1.0] * 10 + [1.0] * 10
    d, low, high = paired_difference(trained2, base2, groups=groups, seed=0)
    assert d == 0 and low < 0 < high


def test_hacking_signals():
    assert distinct_n(["a a a a"], 2) == pytest.approx(1 / 3)
    assert distinct_n(["one"], 2) is None
    assert length_preference([0.5, 0.5, 0.5], [1, 2, 3]) is None  # constant p: ρ undefined
    assert length_preference([0.1, 0.4, 0.8, 0.9], [-5, 1, 2, 30]) == pytest.approx(1.0)
    a = side_signals(["one two three", "four five"], ["length", "stop"])
    b = side_signals(["one", "two"], [None, None])
    s = hacking_signals(a, b, p=[0.9, 0.1], delta=[2, 1])
    assert s["change"]["mean_words"] == 1.5 and b["clipped_share"] is None
    assert s["change"]["clipped_share"] is None and a["clipped_share"] == 0.5


def test_first_slot_is_a_seeded_fair_coin_of_the_key():
    slots = [first_slot(f"k{i}") for i in range(2000)]
    assert 0.45 < slots.count("A") / len(slots) < 0.55
    assert slots == [first_slot(f"k{i}", seed=0) for i in range(2000)]
    assert slots != [first_slot(f"k{i}", seed=1) for i in range(2000)]


def test_every_constraint_id_has_a_family():
    families = {constraint_family(i) for i in REGISTRY}
    assert {"ifeval", "creative", "free_text"} <= families
    assert all(isinstance(getattr(cls, "family", None), str) for cls in REGISTRY.values())


def test_head_to_head_reads_judge_records_in_slot_free_terms():
    """A judge that says "slot A" every time (position bias) only wins where A sits in slot A;
    run through judge_pairs, p_chosen is about the A response wherever it was shown, and an
    invalid judgment is counted, not scored."""
    from quillrl.data import Response, WritingTask
    from quillrl.eval.headtohead import head_to_head, pair_responses
    from quillrl.eval.judging import judge_pairs
    from quillrl.judges.base import Judge, invalid_judgment, scored_judgment

    class SlotA(Judge):
        name = "slot-a"

        def _compare_many(self, pairs):
            return [invalid_judgment("no verdict") if "broken" in a + b else scored_judgment(0.9)
                    for _, a, b in pairs]

    tasks = [WritingTask(id=f"t{i}", prompt=f"p{i}") for i in range(40)]
    a = [Response(id=t.id, sample=0, response="broken" if t.id == "t0" else "a text") for t in tasks]
    b = [Response(id=t.id, sample=0, response="b text") for t in tasks]
    units, counts = pair_responses(tasks, a, b)
    records = list(judge_pairs(SlotA(), [u["pair"] for u in units], seed=0))
    s = head_to_head(units, records)
    slots = [first_slot(u["pair"].id) for u in units[1:]]
    assert s["invalid"] == 1 and s["n"] == 39
    assert s["wins"] == slots.count("A") and s["losses"] == slots.count("B") and s["ties"] == 0
    assert counts["only_a"] == counts["only_b"] == 0 and counts["tasks_judged"] == 40


# ------------------------------------------------ style control: LC and SC win rates (issue 21)

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from quillrl.eval.winrate import controlled_win_rate, length_covariate, sc_win_rate  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(st.integers(8, 200), st.floats(-1.5, 1.5), st.integers(0, 2**31 - 1))
def test_a_length_only_judge_is_even_under_lc_and_sc(n, shift, seed):
    """Whatever the lengths (A longer on average or not), a judge that decides by length alone
    has LC and SC win rates within 0.45–0.55."""
    rng = np.random.default_rng(seed)
    words_b = rng.integers(20, 600, n)
    words_a = np.maximum(1, (words_b * np.exp(shift + rng.normal(0, 0.6, n))).astype(int))
    s = np.where(words_a > words_b, 1.0, np.where(words_a == words_b, 0.5, 0.0))
    lc = controlled_win_rate(s, length_covariate(words_a - words_b))["win_rate"]
    counts_a = np.column_stack([words_a, rng.integers(0, 4, n), rng.integers(0, 9, n), rng.integers(0, 5, n)])
    counts_b = np.column_stack([words_b, rng.integers(0, 4, n), rng.integers(0, 9, n), rng.integers(0, 5, n)])
    sc = sc_win_rate(s, counts_a, counts_b)["win_rate"]
    assert 0.45 <= lc <= 0.55 and 0.45 <= sc <= 0.55


@pytest.mark.parametrize("quality", [-0.8, 0.0, 0.7])
@pytest.mark.parametrize("seed", [0, 1])
def test_quality_plus_length_bias_is_recovered_within_the_interval(quality, seed):
    """A judge with a known quality effect q and a length bias: the LC and SC win rates'
    intervals hold sigmoid(q), which the raw win rate misses."""
    rng = np.random.default_rng(seed)
    n = 3000
    words_b = rng.integers(50, 400, n)
    words_a = (words_b * np.exp(0.4 + rng.normal(0, 0.5, n))).astype(int)  # A is longer
    x = length_covariate(words_a - words_b)
    s = (rng.random(n) < 1 / (1 + np.exp(-(quality + 1.5 * x[:, 0])))).astype(float)
    truth = 1 / (1 + np.exp(-quality))
    lc = controlled_win_rate(s, x)
    sc = sc_win_rate(s, np.column_stack([words_a, np.zeros((n, 3))]), np.column_stack([words_b, np.zeros((n, 3))]))
    assert lc["ci_low"] <= truth <= lc["ci_high"]
    assert abs(s.mean() - truth) > 0.05  # the raw win rate is off: the bias is real
    # SC uses (a−b)/(a+b), not tanh(Δ/sd): a different length model, so a looser check
    assert abs(sc["win_rate"] - truth) < 0.05
