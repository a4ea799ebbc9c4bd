"""GroupRewards: one batched judge call per batch, per-group mixing, sharding across processes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quillrl.errors import ConfigError, DataError
from quillrl.judges.base import Judge, invalid_judgment, scored_judgment
from quillrl.rewards import comparisons_needed, mix_rewards
from quillrl.train.group_rewards import GroupRewards, group_seed, task_constraints
from quillrl.train.policy import violator_max_advantage


class ScriptedJudge(Judge):
    """p(A ≻ B) from a score per text (logistic in the score gap); counts its calls."""

    name = "scripted"

    def __init__(self, scores: dict[str, float], invalid: set[tuple[str, str]] = frozenset()):
        self.scores, self.invalid, self.calls, self.items = scores, invalid, 0, []

    def _compare_many(self, pairs):
        self.calls += 1
        self.items.extend(pairs)
        out = []
        for _, a, b in pairs:
            if (a, b) in self.invalid:
                out.append(invalid_judgment("scripted failure"))
            else:
                out.append(scored_judgment(float(1 / (1 + np.exp(self.scores[b] - self.scores[a])))))
        return out


FORBID_X = json.dumps([{"id": "creative:forbid_words", "kwargs": {"words": ["x"]}}])
TEXTS = ["good story", "fine story", "x bad story", "x worse", "ok", "x meh", "great", "plain"]
SCORES = {t: s for t, s in zip(TEXTS, [2.0, 1.0, 3.0, -1.0, 0.0, 1.5, 2.5, -0.5])}


def compute(strategy="round_robin", group_size=4, **kw):
    judge = ScriptedJudge(SCORES)
    gr = GroupRewards(judge, strategy=strategy, seed=7, **kw)
    prompts = ["p0"] * 4 + ["p1"] * 4
    batch = gr.compute(prompts, TEXTS, [FORBID_X] * 8, group_size, step=3)
    return judge, batch


@pytest.mark.parametrize("strategy", ["pivot", "round_robin"])
def test_one_judge_call_with_exactly_the_needed_comparisons(strategy):
    judge, batch = compute(strategy)
    assert judge.calls == 1
    per_group = [len(comparisons_needed(strategy, 4, seed=group_seed(7, 3, g))) for g in range(2)]
    assert len(judge.items) == sum(per_group) == batch.judgments
    # comparisons never cross groups
    for prompt, a, b in judge.items:
        group = {t: g for g, ts in enumerate([TEXTS[:4], TEXTS[4:]]) for t in ts}
        assert group[a] == group[b] == int(prompt[1])


def test_rlmr_mix_per_group_and_passes():
    _, batch = compute("round_robin")
    assert batch.passed.tolist() == [True, True, False, False, True, False, True, True]
    for g in range(2):
        sl = slice(4 * g, 4 * g + 4)
        np.testing.assert_allclose(batch.rewards[sl], mix_rewards(batch.writing[sl], batch.passed[sl]))
        viol = ~batch.passed[sl]
        assert (batch.rewards[sl][viol] < batch.rewards[sl].mean()).all()
    assert len(batch.lambdas) == 2 and all(lam > 0 for lam in batch.lambdas)
    assert batch.reasons[2].startswith("creative:forbid_words")


def test_reference_strategy_needs_references():
    gr = GroupRewards(ScriptedJudge({**SCORES, "ref": 0.0}), strategy="reference")
    with pytest.raises(DataError, match="reference"):
        gr.compute(["p"] * 4, TEXTS[:4], [FORBID_X] * 4, 4)
    batch = gr.compute(["p"] * 4, TEXTS[:4], [FORBID_X] * 4, 4, references=["ref"] * 4)
    assert batch.judgments == 4 and batch.writing[0] > 0 > batch.writing[3]


def test_invalid_judgments_are_counted_and_filled_with_the_group_mean():
    judge = ScriptedJudge(SCORES, invalid={(TEXTS[0], TEXTS[1]), (TEXTS[0], TEXTS[2]), (TEXTS[0], TEXTS[3])})
    batch = GroupRewards(judge, strategy="round_robin").compute(["p"] * 4, TEXTS[:4], [""] * 4, 4)
    assert batch.judge_invalid == 3 and batch.judge_invalid_rate == 0.5
    assert batch.writing_missing.tolist() == [True, False, False, False]
    assert batch.writing[0] == pytest.approx(batch.writing[1:].mean())  # docs/design.md, "Group barrier"


def test_sharded_judging_matches_single_process():
    """Two 'processes' each judge half the comparisons; gathering gives the same rewards."""
    _, whole = compute("round_robin")
    judges = [ScriptedJudge(SCORES), ScriptedJudge(SCORES)]
    pieces = {}

    def run(rank):
        gr = GroupRewards(judges[rank], strategy="round_robin", seed=7)
        # the fake gather: every rank's local results, in rank order (what gather_object returns)
        return gr.compute(["p0"] * 4 + ["p1"] * 4, TEXTS, [FORBID_X] * 8, 4, step=3, shard=(rank, 2),
                          gather=lambda local: pieces.setdefault(rank, local) and
                          [x for r in sorted(pieces) for x in pieces[r]])

    run(0)  # records rank 0's share; its own result is incomplete until rank 1 has run
    second = run(1)
    assert len(judges[0].items) + len(judges[1].items) == whole.judgments
    np.testing.assert_allclose(second.rewards, whole.rewards)


def test_scalar_strategy_uses_scores():
    class Scorer:
        def score(self, prompts, texts):
            return [SCORES[t] for t in texts]

    batch = GroupRewards(Scorer(), strategy="scalar").compute(["p"] * 4, TEXTS[:4], [""] * 4, 4)
    assert batch.writing.tolist() == [2.0, 1.0, 3.0, -1.0] and batch.passed.all()
    with pytest.raises(ConfigError, match="score"):
        GroupRewards(ScriptedJudge(SCORES), strategy="scalar")


def test_task_constraints_accepts_json_and_lists():
    assert task_constraints(FORBID_X)[0]["id"] == "creative:forbid_words"
    assert task_constraints([{"id": "a"}]) == [{"id": "a"}] and task_constraints("") == []


def test_violator_max_advantage_ignores_unmixed_groups():
    adv = np.array([0.5, -0.5, 0.0, 0.0, 1.0, -1.0])
    assert violator_max_advantage(adv, np.array([True, False, False, False, True, False]), 2) == -0.5
    assert violator_max_advantage(adv, np.array([False, False, True, True, True, True]), 2) is None
