"""circular and swiss (Bradley–Terry) strategies, and RLMR's guarantee under every strategy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quillrl.errors import ConfigError
from quillrl.rewards import (STRATEGIES, bradley_terry, comparisons_needed, mix_rewards, pairwise_rewards,
                             preference_matrix, swiss_pairs)
from quillrl.rewards import fixed_order
from quillrl.scoring.group_rewards import GroupRewards

from test_group_rewards import FORBID_X, SCORES, TEXTS, ScriptedJudge


@pytest.mark.parametrize("n, count", [(1, 0), (2, 1), (3, 3), (8, 8)])
def test_circular_is_a_ring_each_member_in_both_slots(n, count):
    order = list(np.random.default_rng(n).permutation(n))
    pairs = comparisons_needed("circular", n, order=order)
    assert len(pairs) == count
    if n >= 3:
        assert sorted(i for i, _ in pairs) == sorted(j for _, j in pairs) == list(range(n))


def test_circular_rewards_are_the_mean_over_both_neighbours():
    pairs = comparisons_needed("circular", 4)  # (0,1), (1,2), (2,3), (3,0)
    p = preference_matrix(4, pairs, [0.9, 0.5, 0.2, 0.6])
    r = pairwise_rewards(p, "circular")
    # r_0 = ((0.8) + (2·0.4 − 1)) / 2, ...
    np.testing.assert_allclose(r, [(0.8 - 0.2) / 2, (-0.8 + 0.0) / 2, (0.0 - 0.6) / 2, (0.6 + 0.2) / 2])
    assert r.sum() == pytest.approx(0.0)


def test_the_fixed_order_does_not_depend_on_arrival_order():
    texts = ["a", "b", "c", "d", "e"]
    order = fixed_order("prompt", texts)
    perm = [3, 0, 4, 1, 2]
    shuffled = [texts[i] for i in perm]
    assert [shuffled[i] for i in fixed_order("prompt", shuffled)] == [texts[i] for i in order]


def test_swiss_is_adaptive_and_never_listed_up_front():
    with pytest.raises(ConfigError, match="swiss_pairs"):
        comparisons_needed("swiss", 4)


def test_swiss_never_repeats_a_pair_and_ends_in_a_round_robin():
    n, q = 6, np.linspace(2, -2, 6)
    p, seen = np.full((n, n), np.nan), set()
    for r in range(10):
        pairs = swiss_pairs(n, p, r, order=[5, 2, 0, 4, 1, 3])
        if not pairs:
            break
        for i, j in pairs:
            assert frozenset((i, j)) not in seen
            seen.add(frozenset((i, j)))
            p[i, j] = 1 / (1 + np.exp(q[j] - q[i]))
    assert len(seen) == n * (n - 1) // 2


def test_bradley_terry_recovers_strengths_and_flags_unreached_members():
    q = np.array([1.0, 0.0, -1.0, 0.0])
    pairs = [(0, 1), (1, 2), (0, 2)]  # member 3 never compared
    p = preference_matrix(4, pairs, [1 / (1 + np.exp(q[j] - q[i])) for i, j in pairs])
    fit = bradley_terry(p, prior=1e-6)
    assert fit.reached.tolist() == [True, True, True, False]
    b = fit.strength[:3] - fit.strength[:3].mean()
    np.testing.assert_allclose(b, [1.0, 0.0, -1.0], atol=1e-3)
    assert fit.se[3] > fit.se[:3].max()  # the prior alone: the widest interval
    r, missing = pairwise_rewards(p, "swiss", return_missing=True)
    assert missing.tolist() == [False, False, False, True] and r[3] == 0.0


def test_bradley_terry_is_finite_when_one_member_wins_everything():
    p = preference_matrix(3, [(0, 1), (0, 2), (1, 2)], [1.0, 1.0, 0.5])
    fit = bradley_terry(p)
    assert np.all(np.isfinite(fit.strength)) and fit.strength[0] > 0
    assert fit.strength[1] == pytest.approx(fit.strength[2])  # a tie pulls the two together


@pytest.mark.parametrize("strategy", ["circular", "swiss"])
def test_group_rewards_run_the_new_strategies(strategy):
    judge = ScriptedJudge(SCORES)
    gr = GroupRewards(judge, strategy=strategy, seed=7, rounds=2)
    batch = gr.compute(["p0"] * 4 + ["p1"] * 4, TEXTS, [FORBID_X] * 8, 4, step=3)
    assert judge.calls == (1 if strategy == "circular" else 2)  # swiss: one call per round
    assert batch.judgments == (8 if strategy == "circular" else 8)
    for g in range(2):
        w = batch.writing[4 * g:4 * g + 4]
        best = int(np.argmax([SCORES[t] for t in TEXTS[4 * g:4 * g + 4]]))
        assert np.argmax(w) == best
    passed = batch.passed
    adv = batch.rewards.reshape(2, 4) - batch.rewards.reshape(2, 4).mean(1, keepdims=True)
    assert np.all(adv.ravel()[~passed] < 0)


def _judged(strategy, n, probs, order, reference_p):
    """Rewards of a group under ``strategy`` with the judge's answers given by ``probs[i, j]``."""
    if strategy == "reference":
        return pairwise_rewards(reference_p, "reference")
    if strategy == "swiss":
        p = np.full((n, n), np.nan)
        for r in range(3):
            for i, j in swiss_pairs(n, p, r, order):
                p[i, j] = probs[i, j]
        return pairwise_rewards(p, "swiss")
    pairs = comparisons_needed(strategy, n, pivot=0 if strategy == "pivot" else None, order=order)
    p = preference_matrix(n, pairs, [probs[i, j] for i, j in pairs])
    return pairwise_rewards(p, strategy, pivot=0 if strategy == "pivot" else None)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(STRATEGIES), st.integers(2, 12), st.data())
def test_every_violator_gets_a_negative_advantage_under_every_strategy(strategy, n, data):
    """Whatever the judge says (any probabilities, ties and certainties included), the
    writing rewards of any strategy mixed by RLMR give every violator a negative advantage."""
    prob = st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0.0, 1.0))
    raw = np.array(data.draw(st.lists(prob, min_size=n * n, max_size=n * n))).reshape(n, n)
    probs = np.triu(raw, 1) + np.tril(1 - raw.T, -1)  # a consistent p(i ≻ j) = 1 − p(j ≻ i)
    ref = np.array(data.draw(st.lists(prob, min_size=n, max_size=n)))
    order = data.draw(st.permutations(range(n)))
    k = data.draw(st.integers(1, n - 1))
    passed = np.ones(n, dtype=bool)
    passed[data.draw(st.permutations(range(n)))[:k]] = False
    w = _judged(strategy, n, probs, order, ref)
    r = mix_rewards(w, passed, margin=data.draw(st.floats(0.01, 2.0)))
    assert np.all((r - r.mean())[~passed] < 0)
