"""serve-reward: the group barrier, scoring by the trainer's code, limits, faults (real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from quillrl.config import validate_config
from quillrl.judges.base import Judge, invalid_judgment, scored_judgment
from quillrl.serving.barrier import GroupBarrier, GroupConflict, GroupKey, GroupState
from quillrl.httpserve.http import ServerThread
from quillrl.serving.reward_app import RewardService, create_app
from quillrl.serving.reward_config import BadRequest, RewardServerConfig
from quillrl.scoring.group_rewards import GroupRewards

FORBID_MOON = [{"id": "creative:forbid_words", "kwargs": {"words": ["moon"]}}]
TEXTS = ["a tale of the moon and the long night sea", "short", "a middling story of a fox",
         "the moon again, longer and longer still, on and on"]


def make_config(**sections) -> RewardServerConfig:
    data = {"reward": {"judge": "baseline:length", "strategy": "round_robin"}, "group": {"size": 4}}
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    return validate_config(data, RewardServerConfig)


class served:
    """A reward server on a free loopback port for one test."""

    def __init__(self, config: RewardServerConfig, group_rewards=None, token=None):
        self.service = RewardService(config, group_rewards)
        self.thread = ServerThread(create_app(config, self.service, token))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.close()

    @property
    def url(self) -> str:
        return self.thread.base_url

    def post(self, path, body, **kw):
        return httpx.post(self.url + path, json=body, timeout=120, **kw)

    def metric(self, name: str) -> float:
        text = httpx.get(self.url + "/metrics", timeout=30).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def wait_metric(self, name: str, value: float, timeout: float = 60) -> None:
        """Wait until ``name`` reads ``value`` (a request is counted just after its answer is sent)."""
        deadline = time.monotonic() + timeout
        while self.metric(name) != value:
            assert time.monotonic() < deadline, f"{name} = {self.metric(name)}, expected {value}"
            time.sleep(0.02)


def single(server, text, key="g", size=None, constraints=FORBID_MOON):
    body = {"samples": [{"prompt": "Write about the night.", "response": text, "constraints": constraints}],
            "group_key": key}
    if size:
        body["group_size"] = size
    return server.post("/v1/rewards", body)


# -- the barrier's states, on its own --------------------------------------------------------------

def test_barrier_complete_timeout_and_key_reuse():
    closed = []

    async def score(group):
        return [(str(group.key), len(group.members), group.state) for _ in group.members]

    async def run():
        barrier = GroupBarrier(score, timeout_s=0.2, on_closed=lambda g: closed.append(g.state))
        whole = await asyncio.gather(*(barrier.join("k", 3, [i]) for i in range(3)))
        again = asyncio.ensure_future(barrier.join("k", 3, ["late"]))  # same key after completion
        await asyncio.sleep(0)
        assert GroupKey("k") in barrier.open and barrier.open[GroupKey("k")].samples == ["late"]
        with pytest.raises(GroupConflict) as conflict:
            await barrier.join("k", 5, ["x"])
        partial = await again
        split = await barrier.join("s", 2, ["a", "b", "c"])  # the third starts the key's next group
        return whole, partial, conflict.value.field, split

    whole, partial, field, split = asyncio.run(run())
    assert [w[0] for w in whole] == [("k", 3, GroupState.COMPLETE)] * 3
    assert partial == [("k", 1, GroupState.TIMED_OUT)]
    assert field == "group_size"
    assert [s[1] for s in split] == [2, 2, 1]
    assert closed[:2] == [GroupState.COMPLETE, GroupState.TIMED_OUT]


def test_a_resent_sample_takes_over_its_abandoned_place():
    async def score(group):
        return [f"{group.key}:{m}:{len(group.members)}" for m in group.samples]

    async def run():
        barrier = GroupBarrier(score, timeout_s=60)
        first = asyncio.ensure_future(barrier.join("k", 3, ["a"]))
        await asyncio.sleep(0)
        first.cancel()  # the engine's client gave up ...
        await asyncio.gather(first, return_exceptions=True)
        resent = asyncio.ensure_future(barrier.join("k", 3, ["a"]))  # ... and sends "a" again
        rest = await asyncio.gather(barrier.join("k", 3, ["b"]), barrier.join("k", 3, ["c"]))
        late = asyncio.ensure_future(barrier.join("k2", 2, ["x"]))
        await asyncio.sleep(0)
        late.cancel()
        await asyncio.gather(late, return_exceptions=True)
        done = await barrier.join("k2", 2, ["y"])  # k2 completes with the abandoned "x" in it
        again = await barrier.join("k2", 2, ["x"])  # the re-sent "x" gets its scored answer
        return await resent, rest, done, again, barrier.open

    resent, rest, done, again, still_open = asyncio.run(run())
    assert resent == ["k:a:3"] and rest == [["k:b:3"], ["k:c:3"]]  # one group of three, not four
    assert done == ["k2:y:2"] and again == ["k2:x:2"] and not still_open


def test_engine_client_timeout_and_retry_over_http():
    """OpenRLHF's and slime's clients give up after a timeout and re-send the same sample."""
    with served(make_config()) as server:
        body = {"samples": [{"prompt": "Write about the night.", "response": TEXTS[0], "constraints": FORBID_MOON}],
                "group_key": "g"}
        with pytest.raises(httpx.TimeoutException):
            httpx.post(server.url + "/v1/rewards", json=body, timeout=1.0)
        deadline = time.monotonic() + 60
        while not server.service.barrier.abandoned:  # the server saw the client leave
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda t: single(server, t).json()["results"][0], TEXTS))
        server.wait_metric("quillrl_client_disconnects_total", 1)  # the first client, by name
    # one whole group of the four texts: had the retry joined as a fifth member, the last text
    # would have started a new group and come back partial after the timeout
    assert all(a["group_size"] == 4 and not a["partial"] for a in answers)
    assert sorted(a["passed"] for a in answers) == [False, False, True, True]
    summary = server.service.metrics.summary()
    assert summary["groups_complete"] == 1 and summary["client_disconnects"] == 1
    assert summary["requests_timed_out"] == 0 and summary["requests_shed"] == 0


# -- scoring: the same code as train policy ------------------------------------------------------

def test_single_samples_of_a_group_get_what_train_policy_computes():
    config = make_config()
    with served(config) as server, ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda t: single(server, t).json()["results"][0], TEXTS))
    assert all(a["group_size"] == 4 and not a["partial"] for a in answers)
    # the trainer's code on the same group (in arrival order: round_robin does not depend on it)
    reference = GroupRewards(_length_judge(), strategy="round_robin").compute(
        ["Write about the night."] * 4, TEXTS, [json.dumps(FORBID_MOON)] * 4, 4)
    for i in range(4):  # lengths differ, so each writing reward names its sample
        a = min(answers, key=lambda x: abs(x["writing"] - reference.writing[i]))
        assert a["writing"] == pytest.approx(reference.writing[i])
        assert a["reward"] == pytest.approx(reference.rewards[i]) and a["passed"] == bool(reference.passed[i])
    rewards = np.array([a["reward"] for a in answers])
    for a in answers:
        if not a["passed"]:
            assert a["reward"] < rewards.mean() and a["lambda"] > 0 and a["reason"].startswith("creative:")


def _length_judge():
    from quillrl.judges import make_judge

    return make_judge("baseline:length")


def test_incomplete_group_times_out_partial_flagged_and_counted():
    with served(make_config(group={"timeout_s": 0.5})) as server:
        body = {"samples": [{"prompt": "p", "response": t, "constraints": FORBID_MOON} for t in TEXTS[:2]],
                "group_key": "lonely", "group_size": 4}  # two of four members, in one request
        answers = server.post("/v1/rewards", body).json()["results"]
        assert [a["partial"] for a in answers] == [True, True] and answers[0]["group_size"] == 2
        assert server.metric('quillrl_groups_total{outcome="partial"}') == 1
        assert httpx.get(server.url + "/health").json()["open_groups"] == 0


# -- faults: a judge that fails, is slow, or answers garbage ---------------------------------------

class FaultyJudge(Judge):
    """Length judge that raises, or answers invalid for pairs involving ``bad``."""

    def __init__(self, mode: str, bad: str = ""):
        self.mode, self.bad, self.calls, self.pairs = mode, bad, 0, 0

    def _compare_many(self, pairs):
        self.calls += 1
        self.pairs += len(pairs)
        if self.mode == "down":
            raise ConnectionError("judge unreachable: secret-host:1234")
        if self.mode == "slow":
            time.sleep(0.2)
        return [invalid_judgment("no verdict") if self.bad in (a, b) else
                scored_judgment(0.5 + 0.5 * np.tanh(len(a) - len(b))) for _, a, b in pairs]


@pytest.mark.parametrize("on_arrival", [True, False])
def test_judge_down_every_writing_reward_missing_and_constraints_still_apply(on_arrival):
    judge = FaultyJudge("down")
    group_rewards = GroupRewards(judge, strategy="round_robin")
    config = make_config(batch={"judge_retries": 2}, group={"judge_on_arrival": on_arrival})
    with served(config, group_rewards) as server, ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda t: single(server, t).json()["results"][0], TEXTS))
        assert judge.pairs == 6 * 3  # each of the group's six pairs, then two retries
        if not on_arrival:  # judged at the barrier: one call for the six pairs, then two retries
            assert judge.calls == 3
        assert all(a["writing_missing"] and a["writing"] == 0.0 for a in answers)
        passed = [a for a in answers if a["passed"]]
        assert passed and all(a["reward"] > b["reward"] for a in passed for b in answers if not b["passed"])
        assert server.metric("quillrl_writing_missing_total") == 4


@pytest.mark.parametrize("mode", ["garbage", "slow"])
def test_invalid_judgments_fill_the_group_mean(mode):
    judge = FaultyJudge(mode, bad=TEXTS[1])
    with served(make_config(), GroupRewards(judge, strategy="round_robin")) as server, \
            ThreadPoolExecutor(4) as pool:
        answers = {a["writing"]: a for a in pool.map(lambda t: single(server, t).json()["results"][0], TEXTS)}
    missing = [a for a in answers.values() if a["writing_missing"]]
    valid = [a["writing"] for a in answers.values() if not a["writing_missing"]]
    assert len(missing) == 1 and missing[0]["writing"] == pytest.approx(np.mean(valid))
    assert missing[0]["passed"] and missing[0]["reward"] == pytest.approx(missing[0]["writing"])


@pytest.mark.parametrize("fault", ["down", "slow", "garbage"])
def test_a_real_openai_judge_that_fails_gives_missing_writing_rewards(fault):
    """genrm:openai against a stub server: refused connections, answers slower than the
    backend's timeout, or replies with no verdict; retries, then missing rewards, counted."""
    from quillrl.judges import make_judge
    from test_backends_retries import Stub, completion

    stub = Stub(lambda i, body: (200, completion("no verdict here"), {}, 3.0 if fault == "slow" else 0))
    with socket.socket() as free:  # a port the OS just handed out and nothing listens on
        free.bind(("127.0.0.1", 0))
        closed_port = free.getsockname()[1]
    url = f"http://127.0.0.1:{closed_port}/v1" if fault == "down" else stub.url
    judge = make_judge(f"genrm:openai:{url}#m", mode="verdict",
                       backend_options={"timeout": 0.3, "attempts": 2, "backoff": 0.01})
    try:
        with served(make_config(batch={"judge_retries": 1}), GroupRewards(judge, strategy="round_robin")) as server, \
                ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda t: single(server, t).json()["results"][0], TEXTS))
            failures = server.metric("quillrl_judge_failures_total")
    finally:
        stub.close()
    assert all(a["writing_missing"] and a["writing"] == 0.0 for a in answers)
    assert failures == 12  # six pairs, judged twice (one retry)
    assert all(a["reward"] < b["reward"] for a in answers if not a["passed"] for b in answers if b["passed"])


# -- limits, auth, bad input -----------------------------------------------------------------------

def test_auth_body_limit_bad_json_and_no_exception_text(monkeypatch):
    class Exploding(GroupRewards):
        def compute(self, *a, **k):
            raise RuntimeError("secret internal detail")

    config = make_config(http={"max_body_bytes": 2048})
    with served(config, Exploding(_length_judge()), token="s3cret") as server:
        assert httpx.get(server.url + "/health").status_code == 200  # probes need no token
        assert single(server, "x").status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        big = {"samples": [{"prompt": "p", "response": "x" * 5000}]}
        assert server.post("/v1/rewards", big, headers=auth).status_code == 413
        bad = httpx.post(server.url + "/v1/rewards", content=b'{"samples": [', headers=auth, timeout=30)
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
        wrong = server.post("/v1/rewards", {"samples": [{"prompt": "p", "response": 3}]}, headers=auth)
        assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "samples.0.response"
        unknown = server.post("/v1/rewards", {"samples": [{"prompt": "p", "response": "r",
                              "constraints": [{"id": "nope:x"}]}]}, headers=auth)
        assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "samples[0].label.constraints[0]"
        crash = server.post("/v1/rewards", {"samples": [{"prompt": "p", "response": "r"}]}, headers=auth)
        assert crash.status_code == 500 and "secret" not in crash.text


def test_full_queue_answers_503_with_retry_after():
    with served(make_config(http={"max_inflight": 2}, group={"size": 2, "timeout_s": 10})) as server:
        with ThreadPoolExecutor(2) as pool:  # two groups of two, one member each: both held
            waiting = [pool.submit(single, server, t, f"held-{i}") for i, t in enumerate(TEXTS[:2])]
            deadline = time.monotonic() + 60
            while len(server.service.barrier.open) < 2:
                assert time.monotonic() < deadline, "the two held requests never arrived"
                time.sleep(0.01)
            refused = single(server, TEXTS[2], "other")
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            held = [f.result().json()["results"][0] for f in waiting]  # released by the timeout
            assert all(a["partial"] for a in held)
        # counted by name, in /metrics and in the summary the CLI prints at exit
        server.wait_metric("quillrl_requests_shed_total", 1)
        assert server.metric('quillrl_requests_timed_out_total{reason="group"}') == 2
        summary = server.service.metrics.summary()
        assert (summary["requests_shed"], summary["requests_timed_out_group"], summary["requests_timed_out"]) == (1, 2, 2)
        assert summary["client_disconnects"] == 0


def test_a_request_past_its_time_bound_answers_504_counted_as_timed_out():
    class Slow(GroupRewards):  # a whole group whose scoring outlasts the request's time bound
        def compute(self, *a, **k):
            time.sleep(2.0)
            return super().compute(*a, **k)

    # the request bound must exceed the group timeout (the config says so), so the 504 comes
    # from a slow scoring, not from a group still waiting for members
    config = make_config(http={"request_timeout_s": 0.5}, group={"size": 2, "timeout_s": 0.4})
    with served(config, Slow(_length_judge(), strategy="round_robin")) as server:
        body = {"samples": [{"prompt": "Write about the night.", "response": t, "constraints": FORBID_MOON}
                            for t in TEXTS[:2]], "group_key": "slow", "group_size": 2}
        late = server.post("/v1/rewards", body)
        assert late.status_code == 504
        server.wait_metric('quillrl_requests_timed_out_total{reason="request"}', 1)
        summary = server.service.metrics.summary()
        assert (summary["requests_timed_out_request"], summary["requests_timed_out_group"],
                summary["requests_shed"], summary["client_disconnects"]) == (1, 0, 0, 0)


def test_a_client_trickling_its_body_does_not_block_others():
    with served(make_config(http={"body_timeout_s": 10.0})) as server:
        slow = socket.create_connection(("127.0.0.1", server.thread.port))
        slow.sendall(b"POST /v1/rewards HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 400\r\n\r\n{")
        with ThreadPoolExecutor(4) as pool:  # a whole group served while the slow body is open
            answers = list(pool.map(lambda t: single(server, t, key="fast").status_code, TEXTS))
        assert answers == [200] * 4
        try:
            slow.sendall(b" ")  # still trickling ...
        except OSError:
            pass  # already refused: the reply below says why
        slow.settimeout(60)
        reply = slow.recv(4096).decode()  # ... then stalls: 408 after body_timeout_s
        slow.close()
        assert reply.startswith("HTTP/1.1 408")
        server.wait_metric('quillrl_requests_timed_out_total{reason="body"}', 1)
        assert server.service.metrics.summary()["requests_timed_out"] == 1


# -- shutdown --------------------------------------------------------------------------------------

def _held(server, text):
    try:
        return single(server, text)
    except httpx.HTTPError as exc:  # the server stopped while the request was held
        return exc


@pytest.mark.parametrize("on_arrival", [True, False])
def test_stopping_the_server_scores_open_groups_before_the_judge_and_threads_close(on_arrival):
    """The lifespan's shutdown scores every open group and waits for it; it used to close the
    scoring threads and the judge under it ("cannot schedule new futures after shutdown")."""
    config = make_config(group={"size": 4, "timeout_s": 60, "judge_on_arrival": on_arrival})
    server = served(config, GroupRewards(FaultyJudge("slow"), strategy="round_robin"))
    with ThreadPoolExecutor(2) as pool:
        with server:
            held = [pool.submit(_held, server, t) for t in TEXTS[:2]]
            deadline = time.monotonic() + 60
            while sum(len(g.members) for g in server.service.barrier.open.values()) < 2:
                assert time.monotonic() < deadline, "the two held requests never arrived"
                time.sleep(0.01)
        [f.result() for f in held]  # the server stopped: its clients were let go
    group = server.service.barrier.closed[GroupKey("g")]
    assert isinstance(group.outcome, list), group.outcome
    assert [(a["partial"], a["group_size"], a["writing_missing"]) for a in group.outcome] == [(True, 2, False)] * 2


def test_a_scoring_that_outlasts_the_shutdown_limit_fails_its_members_503_and_the_judge_closes_clean():
    class Stuck(GroupRewards):
        def compute(self, *a, **k):
            time.sleep(2.0)
            raise AssertionError("not reached in time")

    service = RewardService(make_config(group={"size": 4, "timeout_s": 60}), Stuck(_length_judge()))

    async def run():
        held = asyncio.ensure_future(service.join("g", 4, [service.sample("p", "r", None, "s", FORBID_MOON)]))
        await asyncio.sleep(0.05)
        began = time.monotonic()
        await service.aclose(limit_s=0.2)
        took = time.monotonic() - began
        with pytest.raises(BadRequest) as out:
            await held
        return out.value, took

    error, took = asyncio.run(run())
    assert error.status == 503 and "shut down" in str(error) and took < 1.5
    late = service.group_rewards.judge.submit([("p", "a", "b")])  # after close: fails now, no hang
    assert late[0].done() and not late[0].result().valid


def test_a_group_size_the_server_cannot_hold_is_a_400_and_timeouts_are_ordered():
    with served(make_config(http={"max_inflight": 4}, group={"size": 2, "timeout_s": 30})) as server:
        big = single(server, TEXTS[0], "big", size=5)
        assert big.status_code == 400 and big.json()["error"]["param"] == "group_size"
        assert "http.max_inflight (4)" in big.json()["error"]["message"] and not server.service.barrier.open
    from quillrl.errors import ConfigError

    with pytest.raises((ConfigError, ValueError), match=r"http.request_timeout_s \(100\).*group.timeout_s \(120\)"):
        make_config(http={"request_timeout_s": 100}, group={"timeout_s": 120})


def test_request_constraints_merge_into_the_label_and_keep_its_prompt_reference_and_principle():
    """NeMo Gym sends both: the request's constraints replace the label's, the rest stays."""
    label = {"prompt": "Write about the night.", "reference": "a reference story of the night",
             "principle": "Prefer concrete images.", "constraints": []}
    with served(make_config(reward={"strategy": "reference"})) as server:
        body = {"samples": [{"response": TEXTS[0], "label": label, "constraints": FORBID_MOON}],
                "group_id": "merged", "group_size": 1}
        out = server.post("/v1/rewards", body)
        assert out.status_code == 200, out.text
        answer = out.json()["results"][0]
        assert not answer["passed"] and answer["reason"].startswith("creative:forbid_words")
        sample = server.service.sample(None, TEXTS[0], json.dumps(label), "s", FORBID_MOON)
    assert (sample.prompt, sample.reference) == (label["prompt"], label["reference"])
    assert "Prefer concrete images." in sample.principle and json.loads(sample.constraints) == FORBID_MOON
