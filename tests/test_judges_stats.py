"""Judge arithmetic with fixed numbers: renormalising, entropy, swap debiasing, consistency."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quillrl.judges import binary_entropy, position_consistency, swap_debias
from quillrl.judges.stats import renormalise, verdict_of

probability = st.floats(min_value=0.0, max_value=1.0)


@pytest.mark.parametrize("p, h", [
    (0.5, 1.0),
    (0.0, 0.0),
    (1.0, 0.0),
    (0.25, 0.8112781244591328),  # -(.25 log2 .25 + .75 log2 .75)
    (0.9, 0.4689955935892812),
    (0.99, 0.08079313589591118),
])
def test_entropy_fixed_values(p, h):
    assert binary_entropy(p) == pytest.approx(h, abs=1e-12)


def test_judges_and_rewards_share_one_entropy_and_one_debias():
    # one function each (quillrl.rewards.verdict), re-exported for the judges
    from quillrl import rewards

    assert binary_entropy is rewards.binary_entropy
    assert swap_debias is rewards.swap_debias


@pytest.mark.parametrize("p_ab, p_ba, expected", [
    (0.9, 0.1, 0.9),    # same preference from both orders
    (0.8, 0.8, 0.5),    # always picks slot A: all position bias, no preference
    (0.2, 0.2, 0.5),    # always picks slot B
    (0.9, 0.5, 0.7),    # sure in one order, undecided in the other
    (0.6, 0.7, 0.45),   # the orders disagree; B slightly ahead
    (1.0, 0.0, 1.0),
    (0.0, 1.0, 0.0),
])
def test_swap_debias_fixed_values(p_ab, p_ba, expected):
    assert swap_debias(p_ab, p_ba) == pytest.approx(expected, abs=1e-12)


@given(probability, probability)
def test_swap_debias_is_antisymmetric_under_relabelling(p_ab, p_ba):
    # Judging (B, A) instead of (A, B) swaps the two orders' roles: p(B > A) = 1 - p(A > B).
    assert swap_debias(p_ba, p_ab) == pytest.approx(1.0 - swap_debias(p_ab, p_ba), abs=1e-12)


@pytest.mark.parametrize("a, b, expected", [
    (0.3, 0.1, 0.75), (0.0, 0.4, 0.0), (1e-9, 1e-9, 0.5), (0.0, 0.0, None), (math.nan, 0.1, None),
])
def test_renormalise(a, b, expected):
    got = renormalise(a, b)
    assert got == (None if expected is None else pytest.approx(expected))


def test_verdict_of_and_consistency():
    assert [verdict_of(p) for p in (0.51, 0.49, 0.5, None)] == ["A", "B", None, None]
    assert position_consistency([False, False, True, None]) == pytest.approx(2 / 3)
    assert position_consistency([None, None]) is None
    assert position_consistency([]) is None
