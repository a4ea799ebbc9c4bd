"""serve-reward under load, on loopback: 200 concurrent single-sample clients, the judge's
throughput and the queue bound it implies, and the rewards checked against each group scored alone.

Groups: StoryER test prompts, each with ``--group-size`` responses (the pair's chosen and
rejected stories and the next pair's, cut to 20–70 words at random) and two constraints,
``creative:word_range {max_words: 45}``, so most groups mix violators and compliant samples, and
``language:response_language {language: en}``, an IFEval check that calls langdetect (whose
profiles load lazily: the first burst after start is where that used to go wrong, issue 23).

Arms, each on a server of its own in this process (clients are httpx coroutines):

1. ``fast``: first, so the server is **cold** (no constraint checked in this process before;
   nothing warmed): ``--groups`` groups at once, every sample its own client (``--groups`` ×
   ``--group-size`` concurrent requests to ``POST /v1/rewards`` with the group key), judged by
   ``baseline:length``: the server's own overhead;
2. with ``--judge`` (skipped when it is ``baseline:length``), one warm-up group (first-call
   costs), then ``serial``: the first ``--serial-groups`` groups, each as one whole-group
   request, one after another (the batcher only ever sees one group; 0 skips it), then
   ``load``: the 200-client burst again on this judge.

Each burst reports errors, whether every violator of a mixed group is below its group mean,
latency p50/p99, pairs per judge call (cross-client batching), the server's counters of requests
timed out, shed and disconnected (``/metrics``), and ``identity``: each group scored alone
through the library (``GroupRewards.compute``, the trainer's code, on the same judge; the first
``--identity-groups`` groups) against the server's answers — how many are identical, and the
largest difference. ``baseline:length`` must be identical; a model judge batched with other
groups may differ by float noise of padding.

The ``load`` arm gives the judge's throughput T (comparisons judged per wall second while 200
clients wait: on a CPU the judge is the bottleneck; counted as ``quillrl_judge_batch_pairs``
counts them, so with ``--swap`` each is two judge passes), the comparisons per group c, and the
queue bound they imply for a client timeout t (``--client-timeout``): at most
``Q = floor(0.8·T·t/c)`` groups queued, i.e. ``http.max_inflight = Q·n`` single-sample requests
(docs/design.md, "Queue bound"; 0.8 leaves room for T's noise and the groups' fill time).

Throughput is samples per second of wall time and of process CPU time (all threads; on a
shared machine wall time also measures the other processes). Bounded: at most 400 requests at
once, all to 127.0.0.1.

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

CONSTRAINT = [{"id": "creative:word_range", "kwargs": {"max_words": 45}},
              {"id": "language:response_language", "kwargs": {"language": "en"}}]


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


def run_arm(url: str, groups, size: int, concurrent: bool, tag: str) -> tuple[dict, list[list]]:
    """One arm: its statistics, and the answers group by group (``None`` for an error).
    Clients are coroutines on one asyncio loop sharing a connection pool (as many connections
    as clients), so client overhead stays small beside the server's."""
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
                flat = [a for _, a in got]
                return [s for s, _ in got], [flat[g * size:(g + 1) * size] for g in range(len(groups))]
            latencies, answers = [], []
            for prompt, texts in groups:
                seconds, results = await whole(client, prompt, texts)
                latencies.append(seconds)
                answers.append(results)
            return latencies, answers

    cpu, wall = time.process_time(), time.perf_counter()
    latencies, by_group = asyncio.run(arm())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    answers = [a for group in by_group for a in group]
    ok = [a for a in answers if a is not None]
    stats = {"samples": len(answers), "errors": len(answers) - len(ok), "wall_s": round(wall, 2),
             "cpu_s": round(cpu, 2), "samples_per_wall_s": len(ok) / wall, "samples_per_cpu_s": len(ok) / cpu,
             "latency_p50_s": statistics.median(latencies),
             "latency_p99_s": sorted(latencies)[max(0, int(0.99 * len(latencies)) - 1)],
             "violators_below_mean": violators_below_mean(by_group), "partial": sum(a["partial"] for a in ok)}
    return stats, by_group


def violators_below_mean(by_group: list[list]) -> dict:
    groups = [g for g in by_group if all(a is not None for a in g)]
    mixed = [g for g in groups if 0 < sum(not a["passed"] for a in g) < len(g)]
    checked = [a["reward"] < statistics.fmean(b["reward"] for b in g) for g in mixed for a in g if not a["passed"]]
    return {"mixed_groups": len(mixed), "violators": len(checked), "below_mean": sum(checked)}


def identity(scorer, groups, by_group: list[list], tag: str, limit: int) -> dict:
    """Each of the first ``limit`` groups scored alone through the library (the trainer's
    ``GroupRewards.compute``, its rule-fixed order salted by the same group id) against what
    the server answered: identical answers, reward and pass mismatches, the largest difference."""
    import json

    identical, passed_differ, largest, compared = 0, 0, 0.0, 0
    for g, ((prompt, texts), answers) in enumerate(zip(groups[:limit], by_group)):
        n = len(texts)
        alone = scorer.compute([prompt] * n, texts, [json.dumps(CONSTRAINT)] * n, n, group_ids=[f"{tag}:{g}"])
        for i, a in enumerate(answers):
            if a is None:
                continue
            compared += 1
            same = (a["reward"], a["writing"], a["passed"]) == (float(alone.rewards[i]), float(alone.writing[i]),
                                                                bool(alone.passed[i]))
            identical += same
            passed_differ += a["passed"] != bool(alone.passed[i])
            largest = max(largest, abs(a["reward"] - float(alone.rewards[i])))
    return {"groups": min(limit, len(by_group)), "compared": compared, "identical": identical,
            "passed_differ": passed_differ, "max_abs_reward_diff": largest}


def pairs_judged(service) -> tuple[float, float]:
    """``(pairs, calls)`` on the real judge so far (retries included)."""
    hist = [s for m in service.metrics.batch_pairs.collect() for s in m.samples]
    total = next(s.value for s in hist if s.name.endswith("_sum"))
    count = next(s.value for s in hist if s.name.endswith("_count"))
    return total, count


COUNTERS = ("requests_timed_out", "requests_timed_out_group", "requests_timed_out_request",
            "requests_shed", "client_disconnects", "groups_partial")


def counters(service) -> dict:
    summary = service.metrics.summary()
    return {k: summary[k] for k in COUNTERS}


def serve(judge: str, mode: str, swap: bool, size: int):
    from quillrl.config import validate_config
    from quillrl.httpserve.http import ServerThread
    from quillrl.scoring.build import build_group_rewards
    from quillrl.serving.reward_app import RewardService, create_app
    from quillrl.serving.reward_config import RewardServerConfig

    config = validate_config({"reward": {"judge": judge, "mode": mode, "swap": swap, "strategy": "pivot"},
                              "group": {"size": size, "timeout_s": 1800},
                              "http": {"request_timeout_s": 3600}}, RewardServerConfig)
    service = RewardService(config)
    # the library's scorer with the same settings and the same (unbatched) judge: groups alone
    alone = build_group_rewards(config.reward, config.mix, config.seed, load_judge=False)
    alone.judge = service.group_rewards.judge.inner
    return service, alone, ServerThread(create_app(config, service)).start()


def burst(service, alone, url: str, groups, size: int, tag: str, identity_groups: int) -> dict:
    """The concurrent arm, with its judge throughput, counters and identity check."""
    pairs0, calls0 = pairs_judged(service)
    before = counters(service)
    stats, by_group = run_arm(url, groups, size, True, tag)
    pairs, calls = pairs_judged(service)
    pairs, calls = pairs - pairs0, calls - calls0
    stats["pairs_judged"], stats["pairs_per_judge_call"] = pairs, (pairs / calls if calls else 0.0)
    stats["pairs_per_group"] = pairs / len(groups)
    stats["pairs_per_wall_s"] = pairs / stats["wall_s"]
    stats["counters"] = {k: v - before[k] for k, v in counters(service).items()}
    stats["identity"] = identity(alone, groups, by_group, tag, identity_groups)
    return stats


MARGIN = 0.8  # of the client's timeout the queue may fill (docs/design.md, "Queue bound")


def queue_bound(pairs_per_s: float, pairs_per_group: float, size: int, client_timeout_s: float,
                burst_groups: int) -> dict:
    """docs/design.md, "Queue bound": Q groups queued wait at worst Q·c/T; the largest Q whose
    wait stays inside ``MARGIN`` of the client's timeout, and the ``http.max_inflight`` that
    admits it."""
    q = int(MARGIN * pairs_per_s * client_timeout_s // pairs_per_group) if pairs_per_group else 0
    return {"client_timeout_s": client_timeout_s, "margin": MARGIN, "T_pairs_per_s": pairs_per_s,
            "c_pairs_per_group": pairs_per_group,
            "max_queued_groups": q, "max_inflight_single_sample": q * size,
            "burst_groups": burst_groups,
            "worst_wait_s_of_burst": burst_groups * pairs_per_group / pairs_per_s if pairs_per_s else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--serial-groups", type=int, default=8, help="0 skips the serial arm")
    parser.add_argument("--identity-groups", type=int, default=None,
                        help="groups re-scored alone for the identity check (default: all)")
    parser.add_argument("--judge", default="genrm:local:smollm2-135m-instruct")
    parser.add_argument("--mode", default="verdict")
    parser.add_argument("--swap", action="store_true", help="judge both orders (twice the cost)")
    parser.add_argument("--client-timeout", type=float, default=600.0,
                        help="the engine client's timeout the queue bound is sized for")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default="runs/bench_reward_server.json")
    args = parser.parse_args()
    if args.groups * args.group_size > 400:
        sys.exit("bounded by design: at most 400 concurrent clients")
    identity_groups = args.groups if args.identity_groups is None else args.identity_groups
    groups = make_groups(max(args.groups, args.serial_groups), args.group_size, args.data_root)
    summary = {"judge": args.judge, "mode": args.mode, "swap": args.swap, "strategy": "pivot",
               "groups": args.groups, "group_size": args.group_size, "clients": args.groups * args.group_size}

    # cold: nothing has checked a constraint in this process yet, and nothing is warmed
    fast_service, fast_alone, fast_server = serve("baseline:length", "verdict", False, args.group_size)
    try:
        summary["fast_judge_load"] = burst(fast_service, fast_alone, fast_server.base_url, groups[: args.groups],
                                           args.group_size, "fast", args.groups)
    finally:
        fast_server.close()

    if args.judge != "baseline:length":
        service, alone, server = serve(args.judge, args.mode, args.swap, args.group_size)
        try:
            run_arm(server.base_url, groups[:1], args.group_size, False, "warmup")  # first-call costs
            if args.serial_groups:
                before = pairs_judged(service)
                serial, _ = run_arm(server.base_url, groups[: args.serial_groups], args.group_size, False, "serial")
                pairs, calls = (a - b for a, b in zip(pairs_judged(service), before))
                serial["pairs_per_judge_call"] = pairs / calls if calls else 0.0
                summary["serial"] = serial
            load = burst(service, alone, server.base_url, groups[: args.groups], args.group_size, "load",
                         identity_groups)
            summary["load"] = load
            backend = getattr(service.group_rewards.judge.inner, "backend", None)
            usage = getattr(backend, "usage", None)
        finally:
            server.close()
        if args.serial_groups:
            summary["ratio_wall"] = load["samples_per_wall_s"] / serial["samples_per_wall_s"]
            summary["ratio_cpu"] = load["samples_per_cpu_s"] / serial["samples_per_cpu_s"]
        summary["judge_prompt_tokens_mean"] = (usage.prompt_tokens / usage.calls) if usage and usage.calls else None
        summary["queue_bound"] = queue_bound(load["pairs_per_wall_s"], load["pairs_per_group"], args.group_size,
                                             args.client_timeout, args.groups)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
