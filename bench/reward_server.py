"""serve-reward under load, on loopback: 200 concurrent single-sample clients, and throughput
against one request at a time on the same judge.

Groups: StoryER test prompts, each with ``--group-size`` responses (the pair's chosen and
rejected stories and the next pair's, cut to 20–70 words at random) and one constraint,
``creative:word_range {max_words: 45}``, so most groups mix violators and compliant samples.

Arms, on one server and one loaded judge (in this process; clients are httpx threads):

1. ``load``: ``--groups`` groups at once, every sample its own client (``--groups`` ×
   ``--group-size`` concurrent requests to ``POST /v1/rewards`` with the group key): errors,
   whether every violator of a mixed group is below its group mean, latency p50/p99, pairs per
   judge call (cross-client batching);
2. ``serial``: the first ``--serial-groups`` groups, each as one whole-group request, one after
   another (the batcher only ever sees one group);
3. ``fast``: the load arm again with ``baseline:length`` as the judge: the server's own overhead.

Throughput is samples per second of wall time and of process CPU time (all threads; on a
shared machine wall time also measures the other processes). The ratio load/serial is the gain
from batching across clients. Bounded: at most a few hundred requests, all to 127.0.0.1.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/reward_server.py [--groups 50] [--serial-groups 8]

The last line is the JSON summary (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

CONSTRAINT = [{"id": "creative:word_range", "kwargs": {"max_words": 45}}]


def make_groups(n_groups: int, size: int, data_root: str | None) -> list[tuple[str, list[str]]]:
    from quillrl.data import read_pairs
    from quillrl.data.importers import run_import

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "storyer-test.jsonl"
        run_import("storyer", path, split="test", seed=0, data_root=data_root)
        pairs = read_pairs(path).records
    rng = random.Random(0)
    stories = [s for p in pairs for s in (p.chosen, p.rejected)]
    groups = []
    for g in range(n_groups):
        texts = [" ".join(stories[(g * size + i) % len(stories)].split()[: rng.randint(20, 70)])
                 for i in range(size)]
        groups.append((pairs[g % len(pairs)].prompt, texts))
    return groups


def run_arm(url: str, groups, size: int, concurrent: bool, tag: str) -> dict:
    """One arm; clients are coroutines on one asyncio loop sharing a connection pool (as many
    connections as clients), so client overhead stays small beside the server's."""
    import asyncio

    import httpx

    async def one(client, g: int, text: str, prompt: str) -> tuple[float, dict | None]:
        body = {"samples": [{"prompt": prompt, "response": text, "constraints": CONSTRAINT}],
                "group_key": f"{tag}:{g}", "group_size": size}
        start = time.perf_counter()
        try:
            r = await client.post(url + "/v1/rewards", json=body)
            return time.perf_counter() - start, (r.json()["results"][0] if r.status_code == 200 else None)
        except httpx.HTTPError:
            return time.perf_counter() - start, None

    async def whole(client, prompt: str, texts: list[str]) -> tuple[float, list]:
        body = {"samples": [{"prompt": prompt, "response": t, "constraints": CONSTRAINT} for t in texts]}
        start = time.perf_counter()
        r = await client.post(url + "/v1/rewards", json=body)
        return time.perf_counter() - start, r.json()["results"] if r.status_code == 200 else [None] * len(texts)

    async def arm() -> tuple[list, list]:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
        async with httpx.AsyncClient(timeout=1800, limits=limits) as client:
            if concurrent:
                got = await asyncio.gather(*(one(client, g, t, p) for g, (p, texts) in enumerate(groups)
                                             for t in texts))
                return [s for s, _ in got], [a for _, a in got]
            latencies, answers = [], []
            for prompt, texts in groups:
                seconds, results = await whole(client, prompt, texts)
                latencies.append(seconds)
                answers.extend(results)
            return latencies, answers

    cpu, wall = time.process_time(), time.perf_counter()
    latencies, answers = asyncio.run(arm())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    ok = [a for a in answers if a is not None]
    return {"samples": len(answers), "errors": len(answers) - len(ok), "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2), "samples_per_wall_s": len(ok) / wall, "samples_per_cpu_s": len(ok) / cpu,
            "latency_p50_s": statistics.median(latencies),
            "latency_p99_s": sorted(latencies)[max(0, int(0.99 * len(latencies)) - 1)],
            "violators_below_mean": violators_below_mean(ok), "partial": sum(a["partial"] for a in ok)}


def violators_below_mean(answers: list[dict]) -> dict:
    groups: dict[str, list[dict]] = {}
    for a in answers:
        groups.setdefault(a["group_key"], []).append(a)
    mixed = [g for g in groups.values() if 0 < sum(not a["passed"] for a in g) < len(g)]
    checked = [a["reward"] < statistics.fmean(b["reward"] for b in g) for g in mixed for a in g if not a["passed"]]
    return {"mixed_groups": len(mixed), "violators": len(checked), "below_mean": sum(checked)}


def pairs_per_call(service) -> float:
    hist = [s for m in service.metrics.batch_pairs.collect() for s in m.samples]
    total = next(s.value for s in hist if s.name.endswith("_sum"))
    count = next(s.value for s in hist if s.name.endswith("_count"))
    return total / count if count else 0.0


def serve(judge: str, mode: str, swap: bool, size: int):
    from quillrl.config import validate_config
    from quillrl.httpserve.http import ServerThread
    from quillrl.serving.reward_app import RewardService, create_app
    from quillrl.serving.reward_config import RewardServerConfig

    config = validate_config({"reward": {"judge": judge, "mode": mode, "swap": swap, "strategy": "pivot"},
                              "group": {"size": size, "timeout_s": 1800},
                              "http": {"request_timeout_s": 3600}}, RewardServerConfig)
    service = RewardService(config)
    return service, ServerThread(create_app(config, service)).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--serial-groups", type=int, default=8)
    parser.add_argument("--judge", default="genrm:local:smollm2-135m-instruct")
    parser.add_argument("--mode", default="verdict")
    parser.add_argument("--swap", action="store_true", help="judge both orders (twice the cost)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default="runs/bench_reward_server.json")
    args = parser.parse_args()
    if args.groups * args.group_size > 400:
        sys.exit("bounded by design: at most 400 concurrent clients")
    groups = make_groups(max(args.groups, args.serial_groups), args.group_size, args.data_root)

    service, server = serve(args.judge, args.mode, args.swap, args.group_size)
    try:
        run_arm(server.base_url, groups[:1], args.group_size, False, "warmup")  # load, first-call costs
        serial = run_arm(server.base_url, groups[: args.serial_groups], args.group_size, False, "serial")
        calls_before = pairs_per_call(service)
        load = run_arm(server.base_url, groups[: args.groups], args.group_size, True, "load")
        load["pairs_per_judge_call"] = pairs_per_call(service)
        serial["pairs_per_judge_call"] = calls_before
        backend = getattr(service.group_rewards.judge.inner, "backend", None)
        usage = getattr(backend, "usage", None)
    finally:
        server.close()
    fast_service, fast_server = serve("baseline:length", "verdict", False, args.group_size)
    try:
        fast = run_arm(fast_server.base_url, groups[: args.groups], args.group_size, True, "fast")
    finally:
        fast_server.close()
    summary = {
        "judge": args.judge, "mode": args.mode, "swap": args.swap, "strategy": "pivot",
        "groups": args.groups, "group_size": args.group_size, "clients": args.groups * args.group_size,
        "load": load, "serial": serial, "fast_judge_load": fast,
        "ratio_wall": load["samples_per_wall_s"] / serial["samples_per_wall_s"],
        "ratio_cpu": load["samples_per_cpu_s"] / serial["samples_per_cpu_s"],
        "judge_prompt_tokens_mean": (usage.prompt_tokens / usage.calls) if usage and usage.calls else None,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
