"""Style: Arena-Hard's markdown counts, and the group-relative length/style penalties with RLMR's
guarantee kept (docs/design.md, "Style control")."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quillrl.rewards import markdown_counts, mix_rewards, style_counts, style_penalties, style_penalties_groups
from quillrl.scoring.config import MixSection
from quillrl.scoring.group_rewards import GroupRewards


def test_markdown_counts_follow_arena_hard():
    text = "# A\n## B\n#no\n- x\n  * y\n+ z\n3. w\n**bold** and __also__ and **not\nbold**\n```\n# code\n- code\n```"
    assert markdown_counts(text) == (2, 4, 2)
    assert tuple(style_counts("plain words only")) == (3, 0, 0, 0)


def test_penalties_are_centred_and_bounded():
    d = style_penalties([5, 50, 500, 5000], [0.0, 0.1, 0.0, 0.3], 0.3, 0.05)
    assert d.sum() == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.abs(d) <= 0.35)
    assert np.argmax(d) == 3 and np.argmin(d) == 0


def test_flat_or_empty_groups_get_no_penalty():
    np.testing.assert_array_equal(style_penalties([7, 7, 7], [0.2, 0.2, 0.2], 0.3, 0.05), 0.0)
    np.testing.assert_array_equal(style_penalties([0, 0], [0.0, 0.0], 0.3, 0.05), 0.0)
    np.testing.assert_array_equal(style_penalties_groups(["a", "b c"], 2), 0.0)  # both off


@pytest.mark.parametrize("bad", [dict(length_penalty=-0.1), dict(style_penalty=float("nan"))])
def test_bad_weights_fail(bad):
    with pytest.raises(ValueError):
        style_penalties([1, 2], [0.0, 0.0], **bad)


def test_mix_section_carries_the_penalties():
    mix = MixSection.model_validate({"length_penalty": 0.3, "style_penalty": 0.05})
    assert (mix.length_penalty, mix.style_penalty) == (0.3, 0.05)
    with pytest.raises(Exception):
        MixSection.model_validate({"length_penalty": -1})


class _LongerWins:
    """A pairwise judge that prefers the longer text (p = 1, 1/2, 0)."""

    def compare_many(self, items):
        from types import SimpleNamespace

        return [SimpleNamespace(p_a=1.0 if len(a.split()) > len(b.split()) else
                                0.5 if len(a.split()) == len(b.split()) else 0.0) for _, a, b in items]


def test_group_rewards_subtract_the_penalty_before_the_mix():
    texts = ["one", "one two three four", "one two", "one two three four five six seven eight"]
    passed_all = [[]] * 4
    base = GroupRewards(_LongerWins(), strategy="round_robin", mix={"method": "writing_only"})
    pen = GroupRewards(_LongerWins(), strategy="round_robin",
                       mix={"method": "writing_only", "length_penalty": 2.0, "style_penalty": 0.0})
    b0 = base.compute(["p"] * 4, texts, passed_all, group_size=4)
    b1 = pen.compute(["p"] * 4, texts, passed_all, group_size=4)
    d = style_penalties([1, 4, 2, 8], length_penalty=2.0)
    np.testing.assert_allclose(b1.writing, b0.writing)  # w itself is reported unpenalised
    np.testing.assert_allclose(b1.penalty, d)
    np.testing.assert_allclose(b1.rewards, b0.writing - d)
    assert b0.penalty is None


@st.composite
def penalised_groups(draw):
    n = draw(st.integers(2, 16))
    w = np.array(draw(st.lists(st.floats(-1.0, 1.0), min_size=n, max_size=n)))
    lengths = np.array(draw(st.lists(st.integers(0, 2000), min_size=n, max_size=n)), dtype=float)
    dens = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))
    k = draw(st.integers(1, n - 1))
    passed = np.ones(n, dtype=bool)
    passed[draw(st.permutations(range(n)))[:k]] = False
    alpha, beta = draw(st.floats(0.0, 2.0)), draw(st.floats(0.0, 1.0))
    margin = draw(st.floats(0.01, 2.0))
    return w, lengths, dens, passed, alpha, beta, margin


@settings(max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(penalised_groups())
def test_every_violator_keeps_a_negative_advantage_under_the_penalties(case):
    w, lengths, dens, passed, alpha, beta, margin = case
    wp = w - style_penalties(lengths, dens, alpha, beta)
    r = mix_rewards(wp, passed, margin=margin)
    advantage = r - r.mean()
    k, n = int((~passed).sum()), w.size
    assert np.all(advantage[~passed] < 0)
    bound = -margin * (wp.std() or 1.0) * (1 - k / n)
    assert np.all(advantage[~passed] <= bound + 1e-9 * (1 + np.abs(r).max()))
    assert np.all((advantage / (r.std() + 1e-4))[~passed] < 0)
