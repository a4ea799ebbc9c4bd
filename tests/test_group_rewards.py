"""GroupRewards: one batched judge call per batch, per-group mixing, sharding across processes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quillrl.constraints import Constraint
from quillrl.errors import ConfigError, ConstraintError, DataError
from quillrl.judges.base import Judge, invalid_judgment, scored_judgment
from quillrl.rewards import comparisons_needed, mix_rewards
from quillrl.scoring.group_rewards import GroupRewards, task_constraints
from quillrl.train.policy_trainer import violator_max_advantage


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
    per_group = [len(comparisons_needed(strategy, 4, pivot=0 if strategy == "pivot" else None))
                 for g in range(2)]
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


class ThreadGather:
    """``gather_object`` for ``world`` threads standing in for processes: each call blocks until
    every rank has given its local list, then returns them all joined in rank order."""

    def __init__(self, world: int):
        import threading

        self.world, self.barrier = world, threading.Barrier(world, timeout=60)
        self.slots: list = [None] * world

    def for_rank(self, rank: int):
        def gather(local: list) -> list:
            self.slots[rank] = local
            self.barrier.wait()
            joined = [x for part in self.slots for x in part]
            self.barrier.wait()  # nobody overwrites a slot before everyone has read them all
            return joined

        return gather


def sharded(strategy: str, judges: list, world: int = 2, **compute_kw):
    """Run GroupRewards.compute on ``world`` thread-'processes'; their batches, by rank."""
    from concurrent.futures import ThreadPoolExecutor

    gather = ThreadGather(world)

    def run(rank):
        gr = GroupRewards(judges[rank], strategy=strategy, seed=7)
        return gr.compute(["p0"] * 4 + ["p1"] * 4, TEXTS, [FORBID_X] * 8, 4, step=3,
                          shard=(rank, world), gather=gather.for_rank(rank), **compute_kw)

    with ThreadPoolExecutor(world) as pool:
        return list(pool.map(run, range(world)))


def test_sharded_judging_matches_single_process():
    """Two 'processes' each judge half the comparisons and check half the constraints;
    gathering gives both the same rewards as one process doing everything."""
    _, whole = compute("round_robin")
    judges = [ScriptedJudge(SCORES), ScriptedJudge(SCORES)]
    batches = sharded("round_robin", judges)
    assert len(judges[0].items) + len(judges[1].items) == whole.judgments
    assert abs(len(judges[0].items) - len(judges[1].items)) <= 1
    for batch in batches:
        np.testing.assert_allclose(batch.rewards, whole.rewards)
        assert batch.passed.tolist() == whole.passed.tolist()
        assert batch.reasons == whole.reasons


def test_sharded_scalar_scores_and_checks_split_the_work():
    class Scorer:
        def __init__(self):
            self.seen = []

        def score(self, prompts, texts):
            self.seen.extend(texts)
            return [SCORES[t] for t in texts]

    scorers = [Scorer(), Scorer()]
    batches = sharded("scalar", scorers)
    assert sorted(scorers[0].seen + scorers[1].seen) == sorted(TEXTS)
    assert len(scorers[0].seen) == len(scorers[1].seen) == 4
    one = GroupRewards(Scorer(), strategy="scalar", seed=7).compute(
        ["p0"] * 4 + ["p1"] * 4, TEXTS, [FORBID_X] * 8, 4, step=3)
    for batch in batches:
        np.testing.assert_allclose(batch.rewards, one.rewards)


def test_mixed_stats_come_from_the_mix():
    """λ per penalised group is the mix's own, and the pivot is the first of the group's
    rule-fixed order (salted with the seed and the group id, "<step>:<g>" in the trainer)."""
    from quillrl.rewards import fixed_order, mix_groups

    judge, batch = compute("pivot")
    r, stats = mix_groups(batch.writing, batch.passed, 4, return_stats=True)
    np.testing.assert_allclose(r, batch.rewards)
    assert batch.lambdas == [s.lam for s in stats if s.penalised] and batch.stats == stats
    assert batch.lambdas  # the fixture has mixed groups: some λ is logged
    for g in range(2):
        u = fixed_order(f"7:3:{g}", TEXTS[4 * g:4 * g + 4])[0]
        # every comparison of the group is against the pivot, and the fold gives the pivot 0
        assert {b for p, _, b in judge.items if p == f"p{g}"} == {TEXTS[4 * g + u]}
        assert batch.writing[4 * g + u] == 0.0


def test_scalar_strategy_uses_scores():
    class Scorer:
        def score(self, prompts, texts):
            return [SCORES[t] for t in texts]

    batch = GroupRewards(Scorer(), strategy="scalar").compute(["p"] * 4, TEXTS[:4], [""] * 4, 4)
    assert batch.writing.tolist() == [2.0, 1.0, 3.0, -1.0] and batch.passed.all()
    with pytest.raises(ConfigError, match="score"):
        GroupRewards(ScriptedJudge(SCORES), strategy="scalar")


def test_task_constraints_validates_json_dicts_and_constraints():
    parsed = task_constraints(FORBID_X)
    assert parsed == [Constraint(id="creative:forbid_words", kwargs={"words": ["x"]})]
    assert task_constraints(parsed)[0] is parsed[0]  # validated constraints pass through
    assert task_constraints(json.loads(FORBID_X)) == parsed and task_constraints("") == []
    with pytest.raises(ConstraintError, match="unknown constraint id 'a'"):
        task_constraints([{"id": "a"}])


def test_validated_constraints_score_as_their_json_form():
    judge = ScriptedJudge(SCORES)
    gr = GroupRewards(judge, strategy="round_robin", seed=7)
    typed = gr.compute(["p0"] * 4 + ["p1"] * 4, TEXTS, [task_constraints(FORBID_X)] * 8, 4, step=3)
    _, as_json = compute("round_robin")
    assert typed.rewards.tolist() == as_json.rewards.tolist()
    assert typed.reasons == as_json.reasons


def test_a_bad_constraint_is_refused_before_anything_is_judged():
    judge = ScriptedJudge(SCORES)
    with pytest.raises(ConstraintError, match="unknown constraint id"):
        GroupRewards(judge, strategy="round_robin").compute(
            ["p"] * 4, TEXTS[:4], [json.dumps([{"id": "creative:nope"}])] * 4, 4)
    assert judge.calls == 0


def test_violator_max_advantage_ignores_unmixed_groups():
    adv = np.array([0.5, -0.5, 0.0, 0.0, 1.0, -1.0])
    assert violator_max_advantage(adv, np.array([True, False, False, False, True, False]), 2) == -0.5
    assert violator_max_advantage(adv, np.array([False, False, True, True, True, True]), 2) is None
