"""RLCS pairwise → scalar rewards: fixed numbers, exact comparison lists, missing judgments."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quillrl.errors import ConfigError
from quillrl.rewards import choose_pivot, comparisons_needed, pairwise_rewards, preference_matrix

P = np.array([[0.5, 0.9, 0.8],
              [0.1, 0.5, 0.4],
              [0.2, 0.6, 0.5]])


def bradley_terry(scores):
    s = np.asarray(scores, dtype=float)
    return 1.0 / (1.0 + np.exp(-(s[:, None] - s[None, :])))


# ---------------------------------------------------------------- fixed numbers

def test_round_robin_fixed():
    # r_0 = mean(2·0.9 − 1, 2·0.8 − 1) = 0.7, r_1 = mean(−0.8, −0.2), r_2 = mean(−0.6, 0.2)
    np.testing.assert_allclose(pairwise_rewards(P), [0.7, -0.5, -0.2])


@pytest.mark.parametrize("u, expected", [(0, [0.0, -0.8, -0.6]), (1, [0.8, 0.0, 0.2]), (2, [0.6, -0.2, 0.0])])
def test_pivot_fixed(u, expected):
    np.testing.assert_allclose(pairwise_rewards(P, "pivot", pivot=u), expected)


def test_reference_fixed():
    np.testing.assert_allclose(pairwise_rewards([0.9, 0.5, 0.25, 0.0], "reference"), [0.8, 0.0, -0.5, -1.0])


def test_pivot_from_seed_is_choose_pivot():
    p = bradley_terry([0.3, -1.0, 2.0, 0.1, 0.7])
    for seed in range(5):
        u = choose_pivot(5, seed)
        np.testing.assert_array_equal(pairwise_rewards(p, "pivot", seed=seed), pairwise_rewards(p, "pivot", pivot=u))
        assert comparisons_needed("pivot", 5, seed=seed) == comparisons_needed("pivot", 5, pivot=u)
    assert len({choose_pivot(16, seed) for seed in range(40)}) > 1  # the seed does move the pivot


def test_single_completion_is_a_tie():
    assert pairwise_rewards([[0.5]]).tolist() == [0.0]
    assert pairwise_rewards([[np.nan]], "pivot", pivot=0).tolist() == [0.0]


# ---------------------------------------------------------------- exactly which comparisons

@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_comparisons_needed_counts_and_coverage(n):
    pivot = comparisons_needed("pivot", n, pivot=n - 1)
    assert len(pivot) == n - 1 and all(j == n - 1 and i != j for i, j in pivot)
    reference = comparisons_needed("reference", n)
    assert reference == [(i, n) for i in range(n)]
    rr = comparisons_needed("round_robin", n)
    assert len(rr) == n * (n - 1) // 2
    assert sorted(rr) == list(itertools.combinations(range(n), 2))


@pytest.mark.parametrize("strategy", ["pivot", "round_robin"])
def test_judging_exactly_the_needed_pairs_gives_the_full_rewards(strategy):
    scores = np.array([0.4, -1.2, 2.0, 0.0, 0.9, -0.3])
    full = bradley_terry(scores)
    pairs = comparisons_needed(strategy, 6, pivot=3 if strategy == "pivot" else None)
    probs = [full[i, j] for i, j in pairs]
    p = preference_matrix(6, pairs, probs)
    kw = {"pivot": 3} if strategy == "pivot" else {}
    np.testing.assert_allclose(pairwise_rewards(p, strategy, **kw), pairwise_rewards(full, strategy, **kw))


def test_reference_probabilities_in_listed_order_are_the_input():
    pairs = comparisons_needed("reference", 3)
    judge = {0: 0.7, 1: 0.2, 2: 0.5}  # p(i ≻ ref)
    np.testing.assert_allclose(pairwise_rewards([judge[i] for i, _ in pairs], "reference"), [0.4, -0.6, 0.0])


def test_preference_matrix():
    p = preference_matrix(3, [(0, 1), (2, 0), (1, 2)], [0.75, 0.1, None])
    expected = [[np.nan, 0.75, 0.9], [0.25, np.nan, np.nan], [0.1, np.nan, np.nan]]
    np.testing.assert_array_equal(p, expected)
    with pytest.raises(ValueError, match="pair up"):
        preference_matrix(3, [(0, 1)], [])
    with pytest.raises(ValueError, match=r"pair \(1, 1\)"):
        preference_matrix(3, [(1, 1)], [0.5])
    with pytest.raises(ValueError, match=r"pair \(0, 3\)"):
        preference_matrix(3, [(0, 3)], [0.5])
    with pytest.raises(ValueError, match="not a probability"):
        preference_matrix(3, [(0, 1)], [1.5])


# ---------------------------------------------------------------- missing judgments and debiasing

def test_round_robin_averages_over_valid_comparisons_and_flags_empty_rows():
    p = preference_matrix(4, [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)], [0.9, 0.6, 0.3, None, None, None])
    r, missing = pairwise_rewards(p, return_missing=True)
    # row 0: mean(0.8, 0.2); row 1: mean(−0.8, −0.4); row 2: mean(−0.2, 0.4); row 3: nothing valid
    np.testing.assert_allclose(r, [0.5, -0.6, 0.1, 0.0])
    assert missing.tolist() == [False, False, False, True]


def test_pivot_missing_comparison_is_zero_and_flagged():
    p = preference_matrix(3, [(0, 2), (1, 2)], [None, 0.8])
    r, missing = pairwise_rewards(p, "pivot", pivot=2, return_missing=True)
    np.testing.assert_allclose(r, [0.0, 0.6, 0.0])
    assert missing.tolist() == [True, False, False]  # the pivot's 0 is its definition, not a gap


def test_reference_missing_is_zero_and_flagged():
    r, missing = pairwise_rewards([np.nan, 1.0], "reference", return_missing=True)
    assert r.tolist() == [0.0, 1.0] and missing.tolist() == [True, False]


def test_one_triangle_suffices():
    full = bradley_terry([1.0, 0.0, -0.5, 2.0])
    upper = np.where(np.triu(np.ones((4, 4), bool), k=1), full, np.nan)
    np.testing.assert_allclose(pairwise_rewards(upper), pairwise_rewards(full))
    lower = np.where(np.tril(np.ones((4, 4), bool), k=-1), full, np.nan)
    np.testing.assert_allclose(pairwise_rewards(lower), pairwise_rewards(full))


def test_raw_one_order_matrix_is_swap_debiased():
    # p[i, j] = i wins when shown first; a judge biased toward the first slot says 0.8 and 0.4:
    # p(0 ≻ 1) = (0.8 + 1 − 0.4) / 2 = 0.7, as in docs/design.md's swap debiasing.
    r = pairwise_rewards([[np.nan, 0.8], [0.4, np.nan]])
    np.testing.assert_allclose(r, [0.4, -0.4])


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("call, error, match", [
    (lambda: pairwise_rewards(P, "tournament"), ConfigError, "pivot, reference, round_robin"),
    (lambda: pairwise_rewards(P, "round_robin", pivot=0), ConfigError, "only applies to strategy='pivot'"),
    (lambda: pairwise_rewards(P, "pivot", pivot=3), ConfigError, "0 <= pivot < 3"),
    (lambda: pairwise_rewards(P, "pivot", pivot=1.0), ConfigError, "pivot"),
    (lambda: comparisons_needed("pivot", 4), ConfigError, "pivot=<index> or seed=<int>"),
    (lambda: comparisons_needed("tournament", 4), ConfigError, "round_robin"),
    (lambda: pairwise_rewards(P[:, :2]), ValueError, r"n×n matrix.*\(3, 2\)"),
    (lambda: pairwise_rewards(P, "reference"), ValueError, "vector of p"),
    (lambda: pairwise_rewards([0.5, 0.5], "round_robin"), ValueError, "n×n"),
    (lambda: pairwise_rewards([[0.5, 1.2], [-0.2, 0.5]]), ValueError, r"p\[0, 1\] = 1.2"),
    (lambda: pairwise_rewards([[0.5, np.inf], [0.0, 0.5]]), ValueError, "not a probability"),
    (lambda: pairwise_rewards([1.01], "reference"), ValueError, "not a probability"),
])
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_diagonal_is_never_read():
    p = P.copy()
    np.fill_diagonal(p, [7.0, np.nan, -3.0])
    np.testing.assert_allclose(pairwise_rewards(p), pairwise_rewards(P))


# ---------------------------------------------------------------- properties

@st.composite
def antisymmetric(draw, min_n=2, max_n=8):
    n = draw(st.integers(min_n, max_n))
    upper = draw(st.lists(st.floats(0.0, 1.0), min_size=n * (n - 1) // 2, max_size=n * (n - 1) // 2))
    p = np.full((n, n), 0.5)
    for (i, j), q in zip(itertools.combinations(range(n), 2), upper):
        p[i, j], p[j, i] = q, 1.0 - q
    return p


@settings(max_examples=200, deadline=None)
@given(antisymmetric())
def test_round_robin_sums_to_zero_and_stays_in_range(p):
    r = pairwise_rewards(p)
    assert abs(r.sum()) < 1e-9
    assert np.all(np.abs(r) <= 1.0)


@settings(max_examples=200, deadline=None)
@given(antisymmetric(), st.data())
def test_dominant_completion_ranks_first(p, data):
    # d prefers-over every j at least as strongly as anyone else does, and beats everyone
    n = p.shape[0]
    d = data.draw(st.integers(0, n - 1))
    for j in range(n):
        if j != d:
            others = [p[i, j] for i in range(n) if i not in (d, j)]
            p[d, j] = max([0.5, *others])
            p[j, d] = 1.0 - p[d, j]
    u = data.draw(st.integers(0, n - 1))
    for r in (pairwise_rewards(p), pairwise_rewards(p, "pivot", pivot=u)):
        assert r[d] >= r.max() - 1e-12


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-40, 40), min_size=2, max_size=8, unique=True), st.data())
def test_bradley_terry_preferences_keep_the_full_order(scores, data):
    s = np.array(scores) / 10.0
    p = bradley_terry(s)
    u = data.draw(st.integers(0, s.size - 1))
    for r in (pairwise_rewards(p), pairwise_rewards(p, "pivot", pivot=u),
              pairwise_rewards(p[:, u], "reference")):
        assert np.all(np.diff(r[np.argsort(s)]) > 0)
