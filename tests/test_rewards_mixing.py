"""RLMR dynamic mixed reward: fixed numbers per method, and the guarantees as properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from quillrl.errors import ConfigError
from quillrl.rewards import mix_groups, mix_rewards, rlmr_lambda

W = [1.0, 2.0, 3.0, 4.0]


# ---------------------------------------------------------------- fixed numbers, one per case

def test_rlmr_penalises_best_written_violator_below_group_mean():
    # mean 2.5, σ = sqrt(1.25); λ = (4 - 2.5) / (1 - 1/4) + 0.5·σ = 2 + 0.5590
    stats = rlmr_lambda(W, [True, True, True, False])
    assert stats.k == 1
    assert stats.sigma == pytest.approx(np.sqrt(1.25))
    assert stats.lam == pytest.approx(2.0 + 0.5 * np.sqrt(1.25))
    r = mix_rewards(W, [True, True, True, False])
    np.testing.assert_allclose(r, [1.0, 2.0, 3.0, 4.0 - stats.lam])
    assert r[3] - r.mean() == pytest.approx(-0.5 * np.sqrt(1.25) * 0.75)


def test_rlmr_violator_already_below_mean_gets_only_the_margin():
    # the violator is the worst writer: excess is 0, λ = margin·σ
    r = mix_rewards(W, [False, True, True, True], margin=1.0)
    np.testing.assert_allclose(r, [1.0 - np.sqrt(1.25), 2.0, 3.0, 4.0])


def test_rlmr_two_violators_divides_excess_by_compliant_share():
    # V = {2, 3}: excess = 4 - 2.5 = 1.5, / (1 - 2/4) = 3, + 0.5·σ
    lam = 3.0 + 0.5 * np.sqrt(1.25)
    assert rlmr_lambda(W, [True, True, False, False]).lam == pytest.approx(lam)
    np.testing.assert_allclose(mix_rewards(W, [True, True, False, False]), [1.0, 2.0, 3.0 - lam, 4.0 - lam])


def test_rlmr_flat_group_uses_sigma_one():
    stats = rlmr_lambda([2.0, 2.0, 2.0, 2.0], [False, True, True, True])
    assert (stats.sigma, stats.lam) == (1.0, 0.5)
    np.testing.assert_allclose(mix_rewards([2.0] * 4, [False, True, True, True]), [1.5, 2.0, 2.0, 2.0])


def test_rlmr_no_violator_is_writing_reward():
    np.testing.assert_array_equal(mix_rewards(W, [True] * 4), W)
    assert rlmr_lambda(W, [True] * 4).lam == 0.0


@pytest.mark.parametrize("all_violate, expected", [("zero", [0.0] * 4), ("writing", W)])
def test_rlmr_all_violate(all_violate, expected):
    np.testing.assert_array_equal(mix_rewards(W, [False] * 4, all_violate=all_violate), expected)
    assert rlmr_lambda(W, [False] * 4)[:3] == (0.0, 4, pytest.approx(np.sqrt(1.25)))


@pytest.mark.parametrize("method, kwargs, expected", [
    ("writing_only", {}, [1.0, 2.0, 3.0, 4.0]),
    ("constraint_only", {}, [1.0, 0.0, 1.0, 0.0]),
    ("linear", {}, [2.0, 2.0, 4.0, 4.0]),
    ("linear", {"weight": 0.5}, [1.5, 2.0, 3.5, 4.0]),
])
def test_baselines(method, kwargs, expected):
    r = mix_rewards(W, [True, False, 1, 0], method=method, **kwargs)
    assert r.dtype == np.float64
    np.testing.assert_array_equal(r, expected)


def test_constraint_only_ignores_missing_writing_rewards():
    np.testing.assert_array_equal(mix_rewards([np.nan, np.nan], [True, False], method="constraint_only"), [1, 0])


def test_result_is_a_new_array():
    w = np.array(W)
    for method in ("rlmr", "writing_only"):
        r = mix_rewards(w, [True] * 4, method=method)
        r[0] = 99.0
        assert w[0] == 1.0


def test_mix_groups_mixes_each_group_whole():
    r = mix_groups([1, 2, 3, 4, 5, 6], [True, False, True, False, False, False], group_size=2)
    first = mix_rewards([1, 2], [True, False])
    np.testing.assert_allclose(r, [*first, *mix_rewards([3, 4], [True, False]), 0.0, 0.0])
    np.testing.assert_allclose(first, [1.0, 0.75])  # σ = 0.5: λ = 0.5 / 0.5 + 0.25
    np.testing.assert_array_equal(mix_groups([1, 2], [True, False], 2, method="writing_only"), [1, 2])
    assert mix_groups([], [], group_size=4).shape == (0,)


# ---------------------------------------------------------------- errors say what to change

def test_nan_writing_reward_names_the_index():
    with pytest.raises(ValueError, match=r"writing\[2\] is nan.*upstream"):
        mix_rewards([1.0, 2.0, np.nan, np.inf], [True, False, True, True])
    with pytest.raises(ValueError, match=r"writing\[5\]"):
        mix_groups([1, 2, 3, 4, 5, np.nan], [True] * 6, group_size=3)


def test_length_not_multiple_of_group_size():
    with pytest.raises(ValueError, match="not a multiple of group_size=4"):
        mix_groups([1.0] * 6, [True] * 6, group_size=4)
    for bad in (0, -2, 2.0, True):
        with pytest.raises(ConfigError, match="group_size"):
            mix_groups([1.0] * 6, [True] * 6, group_size=bad)


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "mixed"}, "rlmr, writing_only, constraint_only, linear"),
    ({"all_violate": "skip"}, "zero, writing"),
    ({"margin": -0.1}, "margin"),
    ({"margin": np.nan}, "margin"),
    ({"weight": np.inf}, "weight"),
])
def test_bad_config_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        mix_rewards(W, [True] * 4, **kwargs)


@pytest.mark.parametrize("writing, passed, match", [
    (W, [True] * 3, "pair up"),
    ([W, W], [[True] * 4] * 2, "1-D"),
    (W, [[True] * 4], "1-D"),
    (W, [True, None, True, True], r"passed\[1\] is None"),
    (W, [True, 0.5, True, True], r"passed\[1\] is 0.5"),
    (W, [True, "yes", True, True], r"passed\[1\]"),
])
def test_bad_inputs(writing, passed, match):
    with pytest.raises(ValueError, match=match):
        mix_rewards(writing, passed)


# ---------------------------------------------------------------- the guarantees, as properties

@st.composite
def groups(draw, k_range=lambda n: (1, n - 1)):
    """A group with exactly-representable rewards (multiples of 1/8) and k violators."""
    n = draw(st.integers(2, 12))
    w = np.array(draw(st.lists(st.integers(-8000, 8000), min_size=n, max_size=n))) / 8.0
    k = draw(st.integers(*k_range(n)))
    passed = np.ones(n, dtype=bool)
    passed[draw(st.permutations(range(n)))[:k]] = False
    return w, passed


margins = st.floats(0.01, 5.0)


@settings(max_examples=300, deadline=None)
@given(groups(), margins)
def test_every_violator_gets_a_negative_advantage(group, margin):
    w, passed = group
    n, k = w.size, int((~passed).sum())
    r = mix_rewards(w, passed, margin=margin)
    sigma = w.std() or 1.0
    advantage = r - r.mean()
    bound = -margin * sigma * (1 - k / n)
    tol = 1e-9 * (1.0 + np.abs(r).max())
    assert np.all(advantage[~passed] <= bound + tol)
    assert np.all(advantage[~passed] < 0)
    assert np.all(r[~passed] < r.mean())
    # GRPO's scaled advantage keeps the sign
    assert np.all((advantage / (r.std() + 1e-4))[~passed] < 0)


@settings(max_examples=200, deadline=None)
@given(groups(), margins)
def test_orderings_within_compliant_and_within_violators_are_kept(group, margin):
    w, passed = group
    r = mix_rewards(w, passed, margin=margin)
    np.testing.assert_array_equal(r[passed], w[passed])  # compliant samples are untouched
    for subset in (passed, ~passed):
        dw = np.subtract.outer(w[subset], w[subset])
        dr = np.subtract.outer(r[subset], r[subset])
        np.testing.assert_array_equal(np.sign(dr), np.sign(dw))


@settings(max_examples=100, deadline=None)
@given(groups(k_range=lambda n: (0, 0)))
def test_no_violator_gives_writing_rewards(group):
    w, passed = group
    np.testing.assert_array_equal(mix_rewards(w, passed), w)


@settings(max_examples=100, deadline=None)
@given(groups(k_range=lambda n: (n, n)))
def test_all_violators_follow_all_violate(group):
    w, passed = group
    np.testing.assert_array_equal(mix_rewards(w, passed), np.zeros_like(w))
    np.testing.assert_array_equal(mix_rewards(w, passed, all_violate="writing"), w)


def _grpo(r):
    return (r - r.mean()) / (r.std() + 1e-4)


@settings(max_examples=200, deadline=None)
@given(groups(k_range=lambda n: (0, n - 1)), margins, st.floats(0.05, 20.0), st.floats(-100.0, 100.0))
def test_affine_rescaling_of_writing_rewards(group, margin, a, b):
    # Holds whenever std(w) > 0; a flat group pins σ to 1 in absolute units, so it cannot scale.
    w, passed = group
    assume(w.std() > 0)
    r = mix_rewards(w, passed, margin=margin)
    r_scaled = mix_rewards(a * w + b, passed, margin=margin)
    np.testing.assert_allclose(r_scaled, a * r + b, rtol=1e-9, atol=1e-9 * (1 + np.abs(a * r + b).max()))
    assert rlmr_lambda(a * w + b, passed, margin).lam == pytest.approx(a * rlmr_lambda(w, passed, margin).lam)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.data())
def test_mix_groups_is_mix_rewards_per_group(n_groups, size, data):
    total = n_groups * size
    w = np.array(data.draw(st.lists(st.integers(-80, 80), min_size=total, max_size=total))) / 8.0
    passed = np.array(data.draw(st.lists(st.booleans(), min_size=total, max_size=total)))
    expected = np.concatenate([mix_rewards(w[s:s + size], passed[s:s + size]) for s in range(0, total, size)])
    np.testing.assert_array_equal(mix_groups(w, passed, size), expected)
