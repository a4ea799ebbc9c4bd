"""Judging while the group arrives (docs/design.md, "Judging while the group arrives"): rewards are
those of scoring the completed group at once, whatever the arrival order, for every strategy."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quillrl.judges.base import Judge, scored_judgment
from quillrl.rewards import ADAPTIVE, STRATEGIES, fixed_order

LISTED = [s for s in STRATEGIES if s not in ADAPTIVE]  # swiss is judged at the barrier
from quillrl.scoring.group_rewards import GroupRewards
from quillrl.serving.reward_app import RewardService
from test_reward_server import FORBID_MOON, make_config, served

PROMPT = "Write about the night."
# a duplicate text (ties in the order), violators of FORBID_MOON, and texts of one length
TEXTS = ["a tale of the moon and the long night sea", "short", "a middling story of a fox",
         "the moon again, longer and longer still, on and on", "short", "owls at dusk",
         "a river runs under the stars all night", "dawn comes; no moon tonight"]
PAIRWISE = [s for s in STRATEGIES if s != "reference"]  # circular too, once rewards adds it


class HashJudge(Judge):
    """Deterministic, and biased to the story shown first, so which member is shown first
    matters: p(A ≻ B) = σ(quality(A) − quality(B) + 0.4), quality from a digest of the text."""

    name = "hash"

    def __init__(self):
        self.items: list[tuple[str, str, str]] = []

    @staticmethod
    def quality(text: str) -> float:
        return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 2**32 * 4 - 2

    def _compare_many(self, pairs):
        self.items.extend(pairs)
        return [scored_judgment(float(1 / (1 + np.exp(self.quality(b) - self.quality(a) - 0.4))))
                for _, a, b in pairs]


def answers_by_text(texts, rewards, writing, passed) -> list[tuple]:
    """Answers keyed by text, so two arrival orders compare member for member (identical texts
    are interchangeable: their answers are compared as a sorted list)."""
    return sorted(zip(texts, map(float, rewards), map(float, writing), map(bool, passed)))


def at_once(strategy: str, texts, key: str, seed: int = 0):
    batch = GroupRewards(HashJudge(), strategy=strategy, seed=seed).compute(
        [PROMPT] * len(texts), texts, [json.dumps(FORBID_MOON)] * len(texts), len(texts),
        group_ids=[key], references=["a reference story of the night"] * len(texts))
    return answers_by_text(texts, batch.rewards, batch.writing, batch.passed)


# -- the trainer: a group's rewards do not depend on the order of its members ---------------------

@settings(max_examples=60, deadline=None)
@given(st.sampled_from(STRATEGIES), st.permutations(list(range(len(TEXTS)))), st.integers(1, 8),
       st.text(max_size=8))
def test_compute_is_a_function_of_the_group_not_of_its_order(strategy, perm, n, key):
    texts = [TEXTS[i] for i in perm[:n]]
    assert at_once(strategy, texts, key) == at_once(strategy, sorted(texts), key)


def test_the_pivot_is_the_first_of_the_rule_fixed_order_and_shown_second():
    judge = HashJudge()
    GroupRewards(judge, strategy="pivot", seed=3).compute([PROMPT] * 8, TEXTS, [""] * 8, 8, group_ids=["g"])
    pivot = TEXTS[fixed_order("3:g", TEXTS)[0]]
    assert len(judge.items) == 7 and {b for _, _, b in judge.items} == {pivot}


# -- the server: arrival order, interleaved with judging ------------------------------------------

def serve_in_order(service: RewardService, key: str, order: list[int], gaps: list[float]) -> list[dict]:
    """Members of group ``key`` join one by one in ``order``, ``gaps`` seconds apart (the judge
    works in between); the answers, in arrival order."""

    async def run():
        calls = []
        for i, gap in zip(order, gaps):
            sample = service.sample(PROMPT, TEXTS[i], None, "s", FORBID_MOON, "a reference story of the night")
            calls.append(asyncio.ensure_future(service.join(key, len(order), [sample])))
            await asyncio.sleep(gap)
        return [(await c)[0] for c in calls]

    return asyncio.run(run())


@pytest.mark.parametrize("strategy", LISTED)
def test_rewards_are_those_of_the_completed_group_in_any_arrival_order(strategy):
    service = RewardService(make_config(reward={"strategy": strategy}, batch={"max_wait_s": 0.002},
                                        group={"judge_on_arrival": True}),
                            GroupRewards(HashJudge(), strategy=strategy))
    queued = []  # (members present, comparisons queued then)
    queue = service.arrival._queue

    def spy(group, work, needed):
        before = set(work.judged)
        queue(group, work, needed)
        queued.append((len(group.members), [item for key, item in needed if key not in before]))

    service.arrival._queue = spy
    rng = random.Random(strategy)
    try:
        for trial in range(12):
            n = rng.choice([1, 2, 3, 5, 8, 8])
            order, key = rng.sample(range(len(TEXTS)), n), f"g{trial}"
            queued.clear()
            answers = serve_in_order(service, key, order, [rng.choice([0.0, 0.001, 0.01]) for _ in order])
            texts = [TEXTS[i] for i in order]
            got = answers_by_text(texts, [a["reward"] for a in answers], [a["writing"] for a in answers],
                                  [a["passed"] for a in answers])
            # the completed group scored at once, its members given in another order
            assert got == at_once(strategy, sorted(texts), key), (strategy, order)
            # once the last member is in, only the comparisons it is in are left to queue
            for present, items in queued:
                if present == n and strategy != "circular":  # a newcomer splits a ring edge; the
                    # edge closing the ring of n members can join two earlier ones
                    assert all(texts[-1] in item[1:3] for item in items), (strategy, order, items)
            if n >= 3:  # and judging had started before it came
                assert any(items for present, items in queued if present < n)
        if strategy in ("round_robin", "reference"):  # every comparison judged is one the group needs
            assert service.metrics.summary()["comparisons_unused"] == 0
    finally:
        service.close()


def test_judge_on_arrival_false_judges_at_the_barrier_with_the_same_rewards():
    out = {}
    for on_arrival in (True, False):
        service = RewardService(make_config(reward={"strategy": "pivot"}, group={"judge_on_arrival": on_arrival}),
                                GroupRewards(HashJudge(), strategy="pivot"))
        try:
            answers = serve_in_order(service, "g", list(range(8)), [0.005] * 8)
        finally:
            service.close()
        out[on_arrival] = [(a["reward"], a["writing"], a["passed"], a["lambda"]) for a in answers]
    assert out[True] == out[False]


# -- over HTTP, on a real server on loopback -------------------------------------------------------

@pytest.mark.parametrize("strategy", PAIRWISE)
def test_over_http_members_in_random_order_get_the_rewards_of_the_whole_group(strategy):
    rng = random.Random(21)
    order = rng.sample(range(8), 8)
    config = make_config(reward={"strategy": strategy}, group={"size": 8, "judge_on_arrival": True})
    with served(config, GroupRewards(HashJudge(), strategy=strategy)) as server, ThreadPoolExecutor(8) as pool:

        def post(i, delay):
            time.sleep(delay)
            body = {"samples": [{"prompt": PROMPT, "response": TEXTS[i], "constraints": FORBID_MOON}],
                    "group_id": "http-group"}
            return server.post("/v1/rewards", body).json()["results"][0]

        delays = np.cumsum([rng.expovariate(1 / 0.05) for _ in order])  # rollouts finishing
        answers = list(pool.map(post, order, delays))
        unused = server.metric("quillrl_comparisons_unused_total")
    got = answers_by_text([TEXTS[i] for i in order], [a["reward"] for a in answers],
                          [a["writing"] for a in answers], [a["passed"] for a in answers])
    assert got == at_once(strategy, [TEXTS[i] for i in order], "http-group")
    assert all(not a["partial"] and a["group_size"] == 8 for a in answers)
    if strategy == "round_robin":
        assert unused == 0
