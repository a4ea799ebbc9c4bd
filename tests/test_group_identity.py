"""Group identity (docs/design.md, "Group identity"): ids and attempts, digests, slots and
replays, groups of one, truncated prompts and disconnects, on a real serve-reward on loopback."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from quillrl.rewards import mix_rewards
from quillrl.serving.barrier import GroupBarrier, GroupConflict, GroupKey, Member
from test_reward_server import FORBID_MOON, TEXTS, make_config, served

PROMPT = "Write about the night."


def sample(text, prompt=PROMPT, slot=None, constraints=FORBID_MOON):
    out = {"prompt": prompt, "response": text, "constraints": constraints}
    if slot is not None:
        out["slot"] = slot
    return out


def post(server, samples, group_id="g", **extra):
    return server.post("/v1/rewards", {"samples": samples, "group_id": group_id, **extra})


def test_a_member_with_another_prompt_is_refused_409_never_mixed():
    """Two prompts under one group id (verl's index collision): the second is refused and counted,
    and the first group still completes with its own members only."""
    with served(make_config(group={"size": 2, "timeout_s": 30})) as server, ThreadPoolExecutor(3) as pool:
        first = pool.submit(post, server, [sample(TEXTS[0])])
        deadline = time.monotonic() + 30
        while not server.service.barrier.open:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        other = post(server, [sample(TEXTS[1], prompt="Write about the day.")])
        assert other.status_code == 409
        assert "digest" in other.json()["error"]["message"] and other.json()["error"]["param"] == "prompt"
        second = post(server, [sample(TEXTS[2])]).json()["results"][0]
        answer = first.result().json()["results"][0]
        assert not answer["partial"] and not second["partial"] and answer["group_size"] == 2
        assert server.metric('quillrl_reward_members_total{outcome="refused_digest"}') == 1


def test_other_constraints_under_one_id_are_refused_too():
    with served(make_config(group={"size": 2, "timeout_s": 0.5})) as server, ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, server, [sample(TEXTS[0])])
        time.sleep(0.2)
        assert post(server, [sample(TEXTS[1], constraints=[])]).status_code == 409
        assert first.result().json()["results"][0]["partial"]  # only its own member, after the timeout


def test_attempts_are_separate_groups():
    with served(make_config(group={"size": 2, "timeout_s": 30})) as server, ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(post, server, [sample(t)], "g", attempt=a) for t, a in
                 zip(TEXTS, [0, 1, 0, 1])]
        results = [c.result().json()["results"][0] for c in calls]
    assert [(r["attempt"], r["group_size"], r["partial"]) for r in results] == \
        [(0, 2, False), (1, 2, False), (0, 2, False), (1, 2, False)]


def test_a_replayed_slot_gets_the_same_answer_and_no_second_place():
    with served(make_config(group={"size": 3, "timeout_s": 30})) as server, ThreadPoolExecutor(4) as pool:
        first = pool.submit(post, server, [sample(TEXTS[0], slot=0)])
        time.sleep(0.2)
        retry = pool.submit(post, server, [sample(TEXTS[0], slot=0)])  # waits with slot 0
        time.sleep(0.2)
        clash = post(server, [sample(TEXTS[3], slot=0)])  # slot 0 holds another response
        assert clash.status_code == 409 and clash.json()["error"]["param"] == "slot"
        rest = [pool.submit(post, server, [sample(t, slot=i + 1)]) for i, t in enumerate(TEXTS[1:3])]
        answers = [f.result().json()["results"][0] for f in [first, retry, *rest]]
        later = post(server, [sample(TEXTS[0], slot=0)]).json()["results"][0]  # after scoring
    assert answers[0] == answers[1] == later
    assert all(a["group_size"] == 3 and not a["partial"] for a in answers)
    assert [a["slot"] for a in answers] == [0, 0, 1, 2]
    assert server.service.metrics.summary()["members_replayed"] == 2


def test_a_group_of_one_is_scored_at_once_and_a_violator_gets_less():
    """Validation with n = 1: no wait for a timeout, and the singleton rule, not 0 for both."""
    with served(make_config(group={"size": 4, "timeout_s": 60})) as server:
        start = time.monotonic()
        bad = post(server, [sample(TEXTS[0])], "v1", group_size=1).json()["results"][0]
        good = post(server, [sample(TEXTS[1])], "v2", group_size=1).json()["results"][0]
        took = time.monotonic() - start
    assert took < 30  # far below the 60 s group timeout
    assert bad["singleton"] and good["singleton"] and not bad["partial"]
    assert (bad["lambda"], good["lambda"]) == (1.0, 0.0)  # the singleton rule's penalty, documented
    assert not bad["passed"] and good["passed"]
    assert bad["reward"] == pytest.approx(-1.0) and good["reward"] == pytest.approx(0.0)
    assert bad["reward"] == mix_rewards([0.0], [False])[0] and good["reward"] == mix_rewards([0.0], [True])[0]


def test_a_client_that_leaves_is_counted_499_not_500():
    with served(make_config(group={"timeout_s": 30})) as server:
        with pytest.raises(httpx.TimeoutException):
            httpx.post(server.url + "/v1/rewards", json={"samples": [sample(TEXTS[0])], "group_id": "gone"},
                       timeout=0.5)
        deadline = time.monotonic() + 30
        while server.metric('quillrl_requests_total{path="/v1/rewards",status="499"}') < 1:
            assert time.monotonic() < deadline, "the disconnect was never counted"
            time.sleep(0.05)
        assert server.metric('quillrl_requests_total{path="/v1/rewards",status="500"}') == 0


def test_openrlhf_truncated_prompt_is_split_by_the_rule_and_flagged():
    """OpenRLHF cut the prompt on the left: the query starts with a suffix of it."""
    prompt = "Please write a short story about the night sky, without the word moon. "
    cut = prompt[20:]
    texts = ["The moon rose over the sleeping town, silver and slow.", "Stars.",
             "A fox crossed the field in the dark, counting stars.", "Night fell; the moon hid."]
    label = {"constraints": FORBID_MOON}
    with served(make_config(group={"size": 4})) as server:
        body = {"query": [cut + t for t in texts], "prompts": [prompt] * 4, "labels": [label] * 4}
        got = server.post("/openrlhf", body).json()
        mismatch = server.post("/openrlhf", {"query": ["Something else entirely. " + texts[0]],
                                             "prompts": [prompt], "labels": [label]})
    logs = got["extra_logs"]
    assert logs["prompt_truncated"] == [1.0] * 4 and logs["passed"] == [0.0, 1.0, 1.0, 0.0]
    mean = sum(got["rewards"]) / 4
    assert all(r < mean for r, p in zip(got["rewards"], logs["passed"]) if not p)
    assert mismatch.status_code == 400 and mismatch.json()["error"]["param"] == "query[0]"


def test_barrier_slots_out_of_range_and_sizes_refused():
    async def score(group):
        return [0.0] * len(group.members)

    async def run():
        outcomes = []
        barrier = GroupBarrier(score, 0.2, on_member=outcomes.append)
        with pytest.raises(GroupConflict) as first_out_of_range:  # no group yet: checked all the same
            await barrier.join(GroupKey("k"), 2, [Member("a", "d", "a", 7)])
        assert not barrier.open and first_out_of_range.value.reason == "slot"
        held = asyncio.ensure_future(barrier.join(GroupKey("k"), 2, [Member("a", "d", "a", 0)]))
        await asyncio.sleep(0)
        with pytest.raises(GroupConflict) as out_of_range:
            await barrier.join(GroupKey("k"), 2, [Member("b", "d", "b", 5)])
        with pytest.raises(GroupConflict) as size:
            await barrier.join(GroupKey("k"), 3, [Member("b", "d", "b", 1)])
        await held
        return outcomes, out_of_range.value.reason, size.value.reason

    outcomes, slot_reason, size_reason = asyncio.run(run())
    assert (slot_reason, size_reason) == ("slot", "size")
    assert outcomes == ["refused_slot", "joined", "refused_slot", "refused_size"]


def test_a_refused_request_joins_none_of_its_samples():
    """One member of a multi-sample request refused (here its digest): the whole request is
    refused, its other members are not left in the group (a retry would join them twice)."""
    day = "Write about the day."
    with served(make_config(group={"size": 3, "timeout_s": 5})) as server, ThreadPoolExecutor(2) as pool:
        mixed = post(server, [sample(TEXTS[0], slot=0), sample(TEXTS[1], prompt=day)], "fresh")
        assert mixed.status_code == 409 and not server.service.barrier.open  # checked against each other
        first = pool.submit(post, server, [sample(TEXTS[0])])
        deadline = time.monotonic() + 30
        while not server.service.barrier.open:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        refused = post(server, [sample(TEXTS[1]), sample(TEXTS[2], prompt=day)])
        assert refused.status_code == 409 and refused.json()["error"]["param"] == "prompt"
        assert len(server.service.barrier.open[GroupKey("g")].members) == 1  # nothing joined
        retry = post(server, [sample(TEXTS[1]), sample(TEXTS[3])]).json()["results"]
        answers = [first.result().json()["results"][0], *retry]
        scored = server.service.barrier.closed[GroupKey("g")]
    assert all(a["group_size"] == 3 and not a["partial"] for a in answers)
    assert [m.sample.response for m in scored.members] == [TEXTS[0], TEXTS[1], TEXTS[3]]


def test_the_first_members_slot_is_range_checked_over_http():
    with served(make_config(group={"size": 2, "timeout_s": 5})) as server:
        out = post(server, [sample(TEXTS[0], slot=7)], "new", group_size=2)
        assert out.status_code == 409 and out.json()["error"]["param"] == "slot"
        assert not server.service.barrier.open


def test_a_scored_slot_replayed_while_the_next_group_holds_that_slot_gets_its_answer():
    with served(make_config(group={"size": 2, "timeout_s": 3})) as server, ThreadPoolExecutor(1) as pool:
        scored = post(server, [sample(TEXTS[0], slot=0), sample(TEXTS[1], slot=1)]).json()["results"]
        nxt = pool.submit(post, server, [sample(TEXTS[2], slot=0)])  # the key's next group, slot 0
        deadline = time.monotonic() + 30
        while not server.service.barrier.open:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        replay = post(server, [sample(TEXTS[0], slot=0)])
        clash = post(server, [sample(TEXTS[3], slot=0)])  # neither group's slot 0: refused
        assert replay.status_code == 200 and replay.json()["results"][0] == scored[0]
        assert clash.status_code == 409 and clash.json()["error"]["param"] == "slot"
        assert nxt.result().json()["results"][0]["partial"]


def test_a_group_scored_slower_than_twice_the_timeout_is_not_forgotten():
    """A replay during a slow scoring waits with the group (no singleton opened for it), and a
    group is forgotten twice the timeout after it was scored, not after it closed."""
    calls = []

    async def score(group):
        calls.append(len(group.members))
        await asyncio.sleep(1.0)  # five times the timeout
        return [f"{m}:{len(group.members)}" for m in group.samples]

    async def run():
        barrier = GroupBarrier(score, 0.2)
        first = asyncio.ensure_future(barrier.join(GroupKey("k"), 1, [Member("a", "d", "a", 0)]))
        await asyncio.sleep(0.6)  # closed at once (a group of one), still being scored
        replay = await barrier.join(GroupKey("k"), 1, [Member("a", "d", "a", 0)])
        await asyncio.sleep(0.1)  # scored less than twice the timeout ago: still remembered
        after = await barrier.join(GroupKey("k"), 1, [Member("a", "d", "a", 0)])
        return await first, replay, after

    first, replay, after = asyncio.run(run())
    assert first == replay == after == ["a:1"] and calls == [1]
