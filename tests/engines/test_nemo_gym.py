"""NeMo Gym 0.7.0 against a real ``serve-reward``: its own agent, models and servers, our /verify.

Runs INSIDE the nemo_gym engine venv (``$QUILLRL_ENGINES_HOME/nemo_gym/bin/python -m pytest
tests/engines/test_nemo_gym.py``). The NeMo Gym side is NeMo Gym's code, served on loopback by
uvicorn as its own tests do (``resources_servers/genrm_compare/tests/test_http_lifecycle.py``):
``SimpleAgent`` (``responses_api_agents/simple_agent/app.py``) runs a dataset row whose columns are
those of ``configs/nemo_gym_quillrl.yaml``'s example data plus NeMo RL's group coordinates, asks a
stand-in policy model for the response, and posts ``/verify`` to our
``QuillRLResourcesServer``, built from the very config file the docs show; that forwards to
``quillrl serve-reward`` (a subprocess, judge ``baseline:length``: longer wins, no model).

The advantage is GRPO's group-mean normalisation computed here, ``(r - mean) / std`` (and the
leave-one-out baseline ``r - mean_{j != i} r_j``): NeMo RL's own advantage code is not importable
in this CPU venv. Each scenario prints one JSON line (rewards, advantages, seconds); run with -s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import statistics
import time
from pathlib import Path

import pytest

pytest.importorskip("nemo_gym")

import uvicorn  # noqa: E402
from fastapi import FastAPI, Request  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

import nemo_gym.server_utils as ng_http  # noqa: E402
from nemo_gym.openai_utils import NeMoGymResponse  # noqa: E402
from quillrl.integrations.nemo_gym import (  # noqa: E402
    QuillRLResourcesServer,
    QuillRLResourcesServerConfig,
    QuillRLVerifyRequest,
    QuillRLVerifyResponse,
)
from responses_api_agents.simple_agent.app import SimpleAgent, SimpleAgentConfig  # noqa: E402
from _server import reward_server  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "nemo_gym_quillrl.yaml"
EXAMPLE = REPO / "examples" / "nemo_gym" / "resources_servers" / "quillrl" / "data" / "example.jsonl"
RESOURCE, AGENT, POLICY = "quillrl_resources_server", "quillrl_simple_agent", "policy_model"
N = 4  # rollouts per prompt in every scenario
GROUP_TIMEOUT_S = 4.0  # serve-reward's group.timeout_s: how long a partial group waits


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    with reward_server(tmp_path_factory.mktemp("nemo_gym"), group_size=N, timeout_s=GROUP_TIMEOUT_S) as url:
        yield url


# -- NeMo Gym's servers on loopback ---------------------------------------------------------------
@contextlib.asynccontextmanager
async def listening(app: FastAPI):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", timeout_graceful_shutdown=0.5))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not (server.started or task.done()):
                await asyncio.sleep(0.01)
        assert server.started
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def production_app(server):
    """The app as NeMo Gym's ``run_webserver`` builds it, less telemetry and uvicorn itself."""
    app = server.setup_webserver()
    server.setup_exception_middleware(app)
    server.setup_cancellation_middleware(app)
    return app


def policy_app() -> FastAPI:
    """A stand-in policy model: answers the text the row put in ``metadata.answer``."""
    app, calls = FastAPI(), [0]

    @app.post("/v1/responses")
    async def respond(request: Request):
        body = await request.json()
        calls[0] += 1
        return {"id": f"policy-{calls[0]}", "created_at": 0.0, "model": "policy", "object": "response",
                "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
                "output": [{"id": f"msg-{calls[0]}", "type": "message", "role": "assistant",
                            "status": "completed", "content": [{"type": "output_text", "annotations": [],
                                                                "text": body["metadata"]["answer"]}]}]}

    return app


def resource_config(url: str, **overrides) -> QuillRLResourcesServerConfig:
    """The shipped config's block, overridden as ``ng_run ++...=`` would, validated as NeMo Gym does
    (``BaseServer.load_config_from_global_config``: the block plus its top-level name)."""
    block = OmegaConf.load(CONFIG)[RESOURCE]["resources_servers"]["quillrl"]
    block = OmegaConf.merge(block, {"reward_server_url": url, "group_size": N, **overrides})
    return QuillRLResourcesServerConfig.model_validate(
        OmegaConf.to_container(block, resolve=True) | {"name": RESOURCE, "host": "127.0.0.1", "port": 0})


@contextlib.asynccontextmanager
async def nemo_gym(url: str, **overrides):
    """NeMo Gym's ServerClient, with the policy, our resources server and the simple agent running."""
    ng_http._GLOBAL_AIOHTTP_CLIENT = None
    session = ng_http.set_global_aiohttp_client(ng_http.GlobalAIOHTTPAsyncClientConfig())
    client = ng_http.ServerClient.model_construct(global_config_dict=OmegaConf.load(CONFIG))
    agent_block = OmegaConf.load(CONFIG)[AGENT]["responses_api_agents"]["simple_agent"]
    agent_config = SimpleAgentConfig.model_validate(
        OmegaConf.to_container(agent_block, resolve=True) | {"name": AGENT, "host": "127.0.0.1", "port": 0})
    assert agent_config.resources_server.name == RESOURCE and agent_config.model_server.name == POLICY
    apps = {POLICY: policy_app(),
            RESOURCE: production_app(QuillRLResourcesServer(config=resource_config(url, **overrides),
                                                            server_client=client)),
            AGENT: production_app(SimpleAgent(config=agent_config, server_client=client))}
    try:
        async with contextlib.AsyncExitStack() as stack:
            for name, app in apps.items():
                client._server_base_urls[name] = await stack.enter_async_context(listening(app))
            yield client
    finally:
        await session.close()
        ng_http._GLOBAL_AIOHTTP_CLIENT = None


def row(answer: str, group: str, index: int, *, attempt: int = 0, example: int = 0) -> dict:
    """A NeMo Gym dataset row of the shipped example data, as NeMo RL sends it to the agent's /run."""
    task = json.loads(EXAMPLE.read_text().splitlines()[example])
    task["responses_create_params"]["metadata"] = {"answer": answer}
    return task | {"_ng_group_id": group, "_ng_group_attempt": attempt, "_ng_rollout_index": index,
                   "_ng_task_index": example}


async def run(client, body: dict) -> dict:
    response = await client.post(server_name=AGENT, url_path="/run", json=body)
    assert response.status == 200, await response.text()
    return await response.json()


async def verify(client, body: dict) -> tuple[int, dict | str]:
    """POST /verify straight to the resources server (a retry of one verify call)."""
    response = await client.post(server_name=RESOURCE, url_path="/verify", json=body)
    return response.status, (await response.json() if response.status == 200 else await response.text())


def verify_body(answer: str, group: str, index: int, example: int = 0) -> dict:
    """A verify request built with NeMo Gym's own models (what the agent posts after /run)."""
    task = json.loads(EXAMPLE.read_text().splitlines()[example])
    response = NeMoGymResponse(id=f"r-{group}-{index}", created_at=0.0, model="policy", object="response",
                               parallel_tool_calls=True, tool_choice="auto", tools=[],
                               output=[{"id": "m", "type": "message", "role": "assistant", "status": "completed",
                                        "content": [{"type": "output_text", "annotations": [], "text": answer}]}])
    request = QuillRLVerifyRequest.model_validate(
        task | {"response": response, "_ng_group_id": group, "_ng_group_attempt": 0, "_ng_rollout_index": index})
    return request.model_dump(mode="json", by_alias=True)


def advantages(rewards: list[float]) -> tuple[list[float], list[float]]:
    mean, std = statistics.fmean(rewards), statistics.pstdev(rewards)
    grpo = [(r - mean) / (std + 1e-6) for r in rewards]
    loo = [r - (sum(rewards) - r) / (len(rewards) - 1) for r in rewards]
    return grpo, loo


def report(scenario: str, started: float, answers: list[dict], **extra) -> None:
    rewards = [a["reward"] for a in answers]
    grpo, _ = advantages(rewards)
    print(json.dumps({"scenario": scenario, "rewards": [round(r, 4) for r in rewards],
                      "advantages": [round(a, 4) for a in grpo],
                      "mask_sample": [a["mask_sample"] for a in answers],
                      "seconds": round(time.monotonic() - started, 3), **extra}))


# Responses to the example task 0 ("... End it with a postscript starting with P.S."): the violator
# is the longest, so a length judge ranks it first and only the RLMR penalty can push it down.
COMPLIANT = ["Rain on tin.\n\nP.S. listen", "Rain taps the roof all night long.\n\nP.S. it stopped",
             "Grey rain drums softly on the old tin roof until dawn.\n\nP.S. the garden drank"]
VIOLATOR = ("Rain falls and falls on the long grey road, on the fields, the roofs, the sleeping town, "
            "and nobody minds at all, because the spring has come back home at last")


def test_a_whole_group_gives_every_violator_a_negative_advantage(server_url):
    async def scenario():
        async with nemo_gym(server_url) as client:
            started = time.monotonic()
            texts = [COMPLIANT[0], VIOLATOR, COMPLIANT[1], COMPLIANT[2]]
            answers = await asyncio.gather(*(run(client, row(t, "g-whole", i)) for i, t in enumerate(texts)))
            report("whole_group", started, answers, passed=[a["passed"] for a in answers],
                   writing=[a["writing"] for a in answers])
            return answers

    answers = asyncio.run(scenario())
    for a in answers:  # NeMo Gym's own response model reads every answer
        QuillRLVerifyResponse.model_validate(a)
    rewards = [a["reward"] for a in answers]
    grpo, loo = advantages(rewards)
    assert [a["passed"] for a in answers] == [True, False, True, True]
    assert answers[1]["writing"] == max(a["writing"] for a in answers)  # the judge liked the violator best
    assert rewards[1] < statistics.fmean(rewards) and grpo[1] < 0 and loo[1] < 0
    assert not any(a["mask_sample"] for a in answers) and not any(a["partial"] for a in answers)
    assert [a["_ng_rollout_index"] for a in answers] == [0, 1, 2, 3]
    assert {a["_ng_group_id"] for a in answers} == {"g-whole"} and answers[0]["constraint_lambda"] > 0


def test_a_partial_group_is_masked(server_url):
    async def scenario():
        async with nemo_gym(server_url) as client:
            started = time.monotonic()
            texts = [COMPLIANT[0], VIOLATOR, COMPLIANT[1]]  # rollout 3 never arrives
            answers = await asyncio.gather(*(run(client, row(t, "g-partial", i)) for i, t in enumerate(texts)))
            report("partial_group", started, answers, group_timeout_s=GROUP_TIMEOUT_S)
            return answers

    answers = asyncio.run(scenario())
    assert all(a["mask_sample"] and a["partial"] for a in answers)
    assert all(a["failure_kind"] == "cohort_incomplete" and "3 of 4" in a["failure_reason"] for a in answers)
    assert all(a["instance_config"]["mask_sample"] for a in answers)  # older NeMo RL consumers
    rewards = [a["reward"] for a in answers]  # still scored, among the 3 present: RLMR's guarantee holds
    assert rewards[1] < statistics.fmean(rewards) and advantages(rewards)[0][1] < 0 and answers[0]["group_size"] == 3


# Waits on the coordinator's group identity in serve-reward (slots, replays, 409); until it merges
# serve-reward ignores "slot" and opens a new group for a key it has seen complete.
def test_a_replayed_verify_gets_the_same_answer(server_url):
    async def scenario():
        async with nemo_gym(server_url) as client:
            bodies = [verify_body(t, "g-replay", i) for i, t in enumerate([*COMPLIANT, VIOLATOR])]
            first = await asyncio.gather(*(verify(client, b) for b in bodies))
            started = time.monotonic()
            again = await verify(client, bodies[3])  # the violator's verify, sent again unchanged
            report("replay", started, [first[3][1], again[1]])
            return first, again

    first, again = asyncio.run(scenario())
    assert all(status == 200 for status, _ in first) and again[0] == 200
    assert again[1]["reward"] == first[3][1]["reward"] and again[1]["mask_sample"] is False
    assert again[1]["passed"] is False and again[1]["writing"] == first[3][1]["writing"]


def test_a_conflicting_slot_or_prompt_is_masked_with_a_reason(server_url):
    async def scenario():
        async with nemo_gym(server_url) as client:
            started = time.monotonic()
            holder = asyncio.create_task(verify(client, verify_body(COMPLIANT[0], "g-conflict", 0)))
            await asyncio.sleep(0.5)
            slot = await verify(client, verify_body(COMPLIANT[1], "g-conflict", 0))  # slot 0, other response
            prompt = await verify(client, verify_body(COMPLIANT[2], "g-conflict", 1, example=1))  # other task
            rest = await asyncio.gather(*(verify(client, verify_body(t, "g-conflict", i))
                                          for i, t in ((1, COMPLIANT[1]), (2, COMPLIANT[2]), (3, VIOLATOR))))
            answers = [(await holder)[1], *(a for _, a in rest)]
            report("conflict", started, answers, conflicts=[slot[1]["failure_reason"], prompt[1]["failure_reason"]])
            return slot, prompt, answers

    slot, prompt, answers = asyncio.run(scenario())
    for status, answer in (slot, prompt):
        assert status == 200 and answer["mask_sample"] and answer["reward"] == 0.0
        assert answer["failure_kind"] == "quillrl:group_conflict" and "409" in answer["failure_reason"]
    assert not any(a["mask_sample"] for a in answers)  # the group itself was not disturbed


def test_an_unreachable_server_masks_and_a_bad_row_fails_loudly(server_url):
    async def scenario():
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            dead = f"http://127.0.0.1:{s.getsockname()[1]}"
        async with nemo_gym(dead) as client:
            down = await verify(client, verify_body(COMPLIANT[0], "g-down", 0))
        async with nemo_gym(server_url) as client:
            body = verify_body(COMPLIANT[0], "g-bad", 0)
            body["constraints"] = [{"id": "creative:no_such_check", "kwargs": {}}]
            bad = await verify(client, body)
            outside = await verify(client, verify_body(COMPLIANT[0], "g-bad", N))
        return down, bad, outside

    down, bad, outside = asyncio.run(scenario())
    assert down[0] == 200 and down[1]["mask_sample"] and down[1]["failure_kind"] == "transport_unreachable"
    assert bad[0] == 502 and "no_such_check" in bad[1]
    assert outside[0] == 422 and "_ng_rollout_index" in outside[1]
