"""RLCS entropy-based reward shaping for GenRM GRPO, and the binary entropy it reads."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from quillrl.errors import ConfigError
from quillrl.rewards import binary_entropy, shape_by_entropy


# ---------------------------------------------------------------- binary entropy

def test_binary_entropy_fixed_values():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0·log 0 must not warn
        h = binary_entropy([0.0, 0.5, 1.0, 0.9, 0.1, 0.25])
    expected_09 = -(0.9 * np.log2(0.9) + 0.1 * np.log2(0.1))
    np.testing.assert_allclose(h, [0.0, 1.0, 0.0, expected_09, expected_09, 0.8112781244591328])
    assert isinstance(binary_entropy(0.5), float)  # a scalar in, a float out
    assert binary_entropy([[0.5, 1.0]]).tolist() == [[1.0, 0.0]]


def test_binary_entropy_nan_stays_nan_and_range_is_checked():
    assert np.isnan(binary_entropy([np.nan, 0.5])[0])
    for bad in (-0.01, 1.01, np.inf):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            binary_entropy([0.5, bad])


@given(st.floats(0.0, 1.0))
def test_binary_entropy_in_unit_interval_and_symmetric(p):
    h = binary_entropy(p)
    assert 0.0 <= h <= 1.0
    assert h == pytest.approx(binary_entropy(1.0 - p), abs=1e-12)


# ---------------------------------------------------------------- fixed numbers

def test_shaping_fixed_numbers_default_floor():
    r = shape_by_entropy([True, True, True, False, False, False, None],
                         [0.0, 0.5, 1.0, 0.0, 0.5, 1.0, None])
    np.testing.assert_allclose(r, [0.2, 0.6, 1.0, -1.0, -0.6, -0.2, -1.5])


def test_floor_one_is_the_unshaped_baseline():
    r = shape_by_entropy([True, True, False, False, None], [0.0, 0.9, 0.1, 1.0, np.nan], floor=1.0)
    np.testing.assert_array_equal(r, [1.0, 1.0, -1.0, -1.0, -1.5])


def test_format_penalty():
    assert shape_by_entropy([None], [None], format_penalty=0.0).tolist() == [-1.0]
    assert shape_by_entropy([None], [0.3], format_penalty=2.0).tolist() == [-3.0]


def test_accepts_numpy_inputs_and_empty():
    r = shape_by_entropy(np.array([True, False]), np.array([0.25, 0.25]), floor=0.5)
    np.testing.assert_allclose(r, [0.625, -0.875])
    assert shape_by_entropy([], []).shape == (0,)


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("kwargs, match", [
    ({"floor": 0.0}, r"floor=0.0 must be in \(0, 1\]"),
    ({"floor": 1.5}, "floor"),
    ({"floor": np.nan}, "floor"),
    ({"format_penalty": -0.1}, "format_penalty"),
    ({"format_penalty": np.inf}, "format_penalty"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        shape_by_entropy([True], [0.5], **kwargs)


@pytest.mark.parametrize("correct, entropy, match", [
    ([True, "A"], [0.5, 0.5], r"correct\[1\] is 'A'"),
    ([True, 1], [0.5, 0.5], r"correct\[1\] is 1"),
    ([True, False], [0.5, 1.2], r"entropy\[1\] = 1.2"),
    ([True, False], [0.5, np.nan], r"entropy\[1\] = nan"),
    ([True, False], [0.5, None], r"entropy\[1\]"),
    ([True, False], [0.5], "one entropy per judgment"),
    ([[True]], [[0.5]], "1-D"),
])
def test_bad_inputs(correct, entropy, match):
    with pytest.raises(ValueError, match=match):
        shape_by_entropy(correct, entropy)


# ---------------------------------------------------------------- properties

floors = st.floats(0.01, 0.99)
# a grid of 1/1000 keeps neighbouring entropies apart by more than float rounding of the reward
entropies = st.integers(0, 1000).map(lambda x: x / 1000)


@settings(max_examples=200, deadline=None)
@given(floors, entropies, entropies)
def test_right_verdict_earns_more_when_uncertain(floor, h1, h2):
    assume(h1 < h2)
    r1, r2 = shape_by_entropy([True, True], [h1, h2], floor=floor)
    assert floor <= r1 < r2 <= 1.0


@settings(max_examples=200, deadline=None)
@given(floors, entropies, entropies)
def test_wrong_verdict_costs_more_when_confident(floor, h1, h2):
    assume(h1 < h2)
    r1, r2 = shape_by_entropy([False, False], [h1, h2], floor=floor)
    assert -1.0 <= r1 < r2 <= -floor


@settings(max_examples=200, deadline=None)
@given(st.floats(0.01, 1.0), st.floats(0.001, 5.0), entropies, entropies)
def test_invalid_below_every_wrong_and_wrong_below_every_right(floor, penalty, h_right, h_wrong):
    right, wrong, invalid = shape_by_entropy([True, False, None], [h_right, h_wrong, None],
                                             floor=floor, format_penalty=penalty)
    assert invalid < wrong < 0 < right


# ---------------------------------------------------------------- when shaping acts (docs/design.md)

def grpo_advantages(rewards: np.ndarray) -> np.ndarray:
    """TRL's GRPO advantage for one group: subtract the mean, divide by the std."""
    return (rewards - rewards.mean()) / (rewards.std() + 1e-4)


def test_within_group_entropy_differences_change_the_update_in_rlcs_direction():
    # one pair, four sampled chains: right & unsure, right & sure, wrong & unsure, wrong & sure
    correct, entropy = [True, True, False, False], [0.9, 0.1, 0.9, 0.1]
    shaped = grpo_advantages(shape_by_entropy(correct, entropy, floor=0.2))
    unshaped = grpo_advantages(shape_by_entropy(correct, entropy, floor=1.0))
    assert unshaped[0] == pytest.approx(unshaped[1]) and unshaped[2] == pytest.approx(unshaped[3])
    assert not np.allclose(shaped, unshaped)
    assert shaped[0] > shaped[1]  # among right verdicts the uncertain one gains
    assert shaped[3] < shaped[2]  # among wrong ones the confident one loses most
    assert shaped[3] == shaped.min() and shaped[0] == shaped.max()


@given(st.lists(st.booleans(), min_size=2, max_size=16), st.floats(0.0, 1.0),
       st.floats(0.05, 1.0))
def test_one_entropy_per_group_only_rescales_the_update(correct, h, floor):
    # right - wrong = 1 + floor whatever H: centred advantages are the unshaped ones times (1+floor)/2
    shaped = shape_by_entropy(correct, [h] * len(correct), floor=floor)
    unshaped = shape_by_entropy(correct, [h] * len(correct), floor=1.0)
    centred_s, centred_u = shaped - shaped.mean(), unshaped - unshaped.mean()
    np.testing.assert_allclose(centred_s, centred_u * (1.0 + floor) / 2.0, atol=1e-12)
    if unshaped.std() > 0:  # and after GRPO's std normalisation they are the same
        np.testing.assert_allclose(centred_s / shaped.std(), centred_u / unshaped.std(), atol=1e-9)
