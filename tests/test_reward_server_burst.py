"""serve-reward started cold, then 200 concurrent single-sample clients at once (issue 23 §8).

The first burst after start used to get wrong rewards: lm-eval's IFEval checks call langdetect,
whose profiles load lazily and not thread-safely, so compliant lowercase texts failed
``change_case:english_lowercase`` and whole groups got 0. Here a fresh server process — nothing
checked in it before the burst — gets 50 groups of 4 as 200 single-sample requests fired
together, with constraints that call langdetect and violators mixed in, and every answer must be
*identical* (not approximately equal) to scoring its group alone through the library
(``GroupRewards.compute``, the trainer's code). The judge is ``baseline:length``, so the writing
rewards are deterministic and any difference is the server's.

Two servers, each in a fresh interpreter: the ``quillrl serve-reward`` CLI as shipped (it warms
the lazy resources before it binds), and the app with nothing warmed (only the loaders' lock
keeps the checks right), judging and checking on arrival. No timing is asserted: on a loaded
machine the burst may take its time (clients wait up to 5 minutes).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from quillrl.config import validate_config
from quillrl.scoring.build import build_group_rewards
from quillrl.serving.reward_config import RewardServerConfig

SRC = str(Path(__file__).resolve().parents[1] / "src")
GROUPS, SIZE = 50, 4
CONSTRAINTS = [{"id": "change_case:english_lowercase"},
               {"id": "language:response_language", "kwargs": {"language": "en"}}]
ENGLISH = ("the old keeper climbed the stairs of the lighthouse every evening and watched the boats "
           "come home across the grey water while the gulls argued over the nets on the pier and "
           "the children ran along the harbour wall until their mothers called them in for supper").split()
SPANISH = ("el viejo guardián subía las escaleras del faro cada tarde y miraba los barcos volver a casa "
           "sobre el agua gris mientras las gaviotas discutían sobre las redes del muelle y los niños "
           "corrían por el muro del puerto hasta que sus madres los llamaban a cenar").split()

# the settings both servers run with: pivot (its order is salted by the group id), RLMR mix
SETTINGS = {"reward": {"judge": "baseline:length", "strategy": "pivot"}, "group": {"size": SIZE}}

APP = r"""
import json, sys
from quillrl.config import validate_config
from quillrl.httpserve.http import ServerThread
from quillrl.serving.reward_app import RewardService, create_app
from quillrl.serving.reward_config import RewardServerConfig

config = validate_config(json.loads(sys.argv[1]), RewardServerConfig)
service = RewardService(config)
server = ServerThread(create_app(config, service)).start()
print(json.dumps({"url": server.base_url}), flush=True)
sys.stdin.read()  # until the test closes our stdin
server.close()
print(json.dumps(service.metrics.summary()), flush=True)
"""


def make_groups() -> list[tuple[str, list[str], list[bool]]]:
    """50 groups of 4 ``(prompt, texts, compliant)``: lowercase English stories of 12–40 words,
    with violators mixed in: capitalised (not lowercase) and Spanish (not English) ones."""
    rng = random.Random(23)
    groups = []
    for g in range(GROUPS):
        texts, compliant = [], []
        for i in range(SIZE):
            words = rng.randint(12, 40)
            start = rng.randrange(len(ENGLISH))
            english = " ".join((ENGLISH * 2)[start:start + words])
            kind = (g + i) % 5 if g % 3 else 0  # a third of the groups all compliant
            if kind == 1:
                texts.append(english.capitalize() + ".")
            elif kind == 2:
                texts.append(" ".join((SPANISH * 2)[start:start + words]))
            else:
                texts.append(english)
            compliant.append(kind not in (1, 2))
        groups.append((f"Write a short scene at harbour number {g}.", texts, compliant))
    return groups


def alone(groups) -> list[list[dict]]:
    """Each group scored on its own through the library, as the trainer scores it."""
    config = validate_config(SETTINGS, RewardServerConfig)
    scorer = build_group_rewards(config.reward, config.mix, config.seed)
    out = []
    for g, (prompt, texts, _) in enumerate(groups):
        batch = scorer.compute([prompt] * SIZE, texts, [json.dumps(CONSTRAINTS)] * SIZE, SIZE,
                               group_ids=[f"burst:{g}"])
        out.append([{"reward": float(batch.rewards[i]), "writing": float(batch.writing[i]),
                     "passed": bool(batch.passed[i]), "reason": batch.reasons[i]} for i in range(SIZE)])
    return out


async def burst(url: str, groups) -> tuple[list[list[dict]], str]:
    """Every sample its own client, all fired together."""
    limits = httpx.Limits(max_connections=GROUPS * SIZE, max_keepalive_connections=GROUPS * SIZE)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        async def one(g: int, prompt: str, text: str) -> dict:
            body = {"samples": [{"prompt": prompt, "response": text, "constraints": CONSTRAINTS}],
                    "group_key": f"burst:{g}", "group_size": SIZE}
            r = await client.post(url + "/v1/rewards", json=body)
            assert r.status_code == 200, r.text
            return r.json()["results"][0]

        flat = await asyncio.gather(*(one(g, prompt, t) for g, (prompt, texts, _) in enumerate(groups)
                                      for t in texts))
        metrics = (await client.get(url + "/metrics")).text
    return [flat[g * SIZE:(g + 1) * SIZE] for g in range(GROUPS)], metrics


def start(how: str, stderr) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PYTHONUNBUFFERED": "1"}
    if how == "cli":
        sets = [f"--set={k}.{f}={v}" for k, section in SETTINGS.items() for f, v in section.items()]
        argv = [sys.executable, "-c", "from quillrl.cli import main; main()", "serve-reward", "--port", "0", *sets]
    else:  # nothing warmed; checks on arrival, so the burst's checks run in the pool at once
        settings = {**SETTINGS, "group": {**SETTINGS["group"], "judge_on_arrival": True}}
        argv = [sys.executable, "-c", APP, json.dumps(settings)]
    # stderr to a file: a pipe nobody reads could fill and stall the server
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                            text=True, env=env)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        proc.wait()
        stderr.seek(0)
        raise AssertionError(f"the server did not start: {stderr.read()[-3000:]}")
    return proc, json.loads(line)["url"]


def stop(proc: subprocess.Popen, how: str, stderr) -> dict:
    """Stop the server as a user would (Ctrl-C; the app: end of its stdin); its exit summary."""
    if how == "cli":
        proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(input="", timeout=120)
    stderr.seek(0)
    assert proc.returncode == 0, stderr.read()[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


@pytest.mark.timeout(900)  # a server that never starts or never answers fails, not hangs
@pytest.mark.parametrize("how", ["cli", "app_unwarmed"])
def test_cold_burst_of_200_clients_gets_the_rewards_of_each_group_alone(how, tmp_path):
    groups = make_groups()
    with open(tmp_path / "stderr", "w+") as stderr:
        proc, url = start(how, stderr)
        try:
            answers, metrics = asyncio.run(burst(url, groups))
        finally:
            summary = stop(proc, how, stderr) if proc.poll() is None else {}
    expected = alone(groups)
    # the library's verdicts are the planted ones (lowercase English passes, the rest fails),
    # and 33 of the 50 groups mix violators and compliant samples
    assert [[e["passed"] for e in g] for g in expected] == [planted for _, _, planted in groups]
    assert sum(0 < sum(not e["passed"] for e in g) < SIZE for g in expected) == 33
    differ = [(g, i, a, e) for g, (got, want) in enumerate(zip(answers, expected))
              for i, (a, e) in enumerate(zip(got, want))
              if (a["reward"], a["writing"], a["passed"], a["reason"]) != tuple(e.values())]
    assert not differ, f"{len(differ)} of 200 differ from their group scored alone, e.g. {differ[:2]}"
    assert not any(a["partial"] for g in answers for a in g)
    for name in ("quillrl_requests_timed_out_total", "quillrl_requests_shed_total",
                 "quillrl_client_disconnects_total"):
        assert _metric(metrics, name) == 0, name
    assert summary["groups_complete"] == GROUPS and summary["groups_partial"] == 0
    assert summary["requests_timed_out"] == summary["requests_shed"] == summary["client_disconnects"] == 0
