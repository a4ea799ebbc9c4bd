"""Judging while the group arrives against barrier-then-judge: the time from a group's last
member to its answer, and the judge's work, on one serve-reward with the embedded judge.

Groups: ``--groups`` StoryER test prompts with ``--group-size`` responses each (as
bench/reward_server.py builds them: stories cut to 20–70 words, constraint
``creative:word_range {max_words: 45}``). Members arrive as rollouts finish: each group starts
at a uniform time in ``[0, --spread-s)`` and its members follow one another with exponential gaps
of mean ``--mean-gap-s``; every member is its own client (``POST /v1/rewards`` with the group
key). The same seeded schedule is replayed against two servers that differ only in
``group.judge_on_arrival`` (true: a comparison is judged as soon as both members are in; false:
the whole group is judged once complete), for each ``--strategies``.

Per arm: last-arrival-to-answer seconds per group (the last member's request, sent → answered;
median and max), judge pairs (compare_many items sent to the judge, retries included), judge
calls (compare_many calls), comparisons judged but not needed, wall seconds; and whether both
modes gave every member the same reward (max absolute difference; exact with a deterministic
judge, within padding noise with a batched model).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/arrival_latency.py \\
        [--groups 6] [--group-size 8] [--strategies pivot,round_robin]

The last line is the JSON summary (also written to ``--out``). Timings on a shared CPU include
whatever else the machine runs: read the two modes against each other, within one run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reward_server import CONSTRAINT, make_groups  # noqa: E402  (bench scripts are not a package)


def schedule(n_groups: int, size: int, spread_s: float, mean_gap_s: float,
             seed: int) -> list[tuple[float, int, int]]:
    """``(seconds from start, group, member)`` for every member, sorted by time."""
    rng = random.Random(seed)
    out = []
    for g in range(n_groups):
        t = rng.uniform(0, spread_s)
        for i in range(size):
            out.append((t, g, i))
            t += rng.expovariate(1 / mean_gap_s)
    return sorted(out)


def histogram(service) -> tuple[float, float]:
    """(pairs, calls) sent to the judge so far, from the server's own metrics."""
    samples = [s for m in service.metrics.batch_pairs.collect() for s in m.samples]
    return (next(s.value for s in samples if s.name.endswith("_sum")),
            next(s.value for s in samples if s.name.endswith("_count")))


def serve(args, strategy: str, on_arrival: bool):
    from quillrl.config import validate_config
    from quillrl.httpserve.http import ServerThread
    from quillrl.serving.reward_app import RewardService, create_app
    from quillrl.serving.reward_config import RewardServerConfig

    config = validate_config({"reward": {"judge": args.judge, "mode": args.mode, "swap": not args.no_swap,
                                         "strategy": strategy},
                              "group": {"size": args.group_size, "timeout_s": 1800,
                                        "judge_on_arrival": on_arrival},
                              "http": {"request_timeout_s": 3600}}, RewardServerConfig)
    service = RewardService(config)
    return service, ServerThread(create_app(config, service)).start()


def run_arm(args, groups, plan, strategy: str, on_arrival: bool) -> tuple[dict, dict]:
    import httpx

    service, server = serve(args, strategy, on_arrival)
    try:
        prompt, texts = groups[0]  # warm-up: load the model, first-call costs
        httpx.post(server.base_url + "/v1/rewards", timeout=3600, json={
            "samples": [{"prompt": prompt, "response": t, "constraints": CONSTRAINT} for t in texts]})
        pairs0, calls0 = histogram(service)
        unused0 = service.metrics.summary()["comparisons_unused"]
        sent: dict[tuple[int, int], float] = {}
        answered: dict[tuple[int, int], tuple[float, dict]] = {}
        client = httpx.Client(timeout=3600, limits=httpx.Limits(max_connections=1000))

        def member(at: float, g: int, i: int, start: float) -> None:
            time.sleep(max(0.0, start + at - time.perf_counter()))
            prompt, texts = groups[g]
            body = {"samples": [{"prompt": prompt, "response": texts[i], "constraints": CONSTRAINT}],
                    "group_id": f"group-{g}", "group_size": args.group_size}  # one id in both arms: one order
            sent[g, i] = time.perf_counter()
            r = client.post(server.base_url + "/v1/rewards", json=body)
            answered[g, i] = (time.perf_counter(), r.json()["results"][0])

        start = time.perf_counter()
        threads = [threading.Thread(target=member, args=(at, g, i, start)) for at, g, i in plan]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        client.close()
        pairs, calls = histogram(service)
        unused = service.metrics.summary()["comparisons_unused"] - unused0
    finally:
        server.close()
    latency = []
    for g in range(len(groups)):
        last = max(range(args.group_size), key=lambda i: sent[g, i])
        latency.append(answered[g, last][0] - sent[g, last])
    rewards = {(g, i): a["reward"] for (g, i), (_, a) in answered.items()}
    return {"last_arrival_to_answer_s_median": statistics.median(latency),
            "last_arrival_to_answer_s_max": max(latency),
            "last_arrival_to_answer_s": [round(x, 3) for x in latency],
            "judge_pairs": int(pairs - pairs0), "judge_calls": int(calls - calls0),
            "comparisons_unused": unused, "wall_s": round(wall, 2),
            "partial": sum(a["partial"] for _, a in answered.values())}, rewards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=6)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--strategies", default="pivot,round_robin")
    parser.add_argument("--spread-s", type=float, default=4.0, help="groups start within this window")
    parser.add_argument("--mean-gap-s", type=float, default=1.0, help="mean gap between a group's arrivals")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--judge", default="genrm:local:smollm2-135m-instruct")
    parser.add_argument("--mode", default="verdict")
    parser.add_argument("--no-swap", action="store_true", help="judge one presentation order only")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default="runs/bench_arrival_latency.json")
    args = parser.parse_args()
    if args.groups * args.group_size > 400:
        sys.exit("bounded by design: at most 400 concurrent clients")
    groups = make_groups(args.groups, args.group_size, args.data_root)
    plan = schedule(args.groups, args.group_size, args.spread_s, args.mean_gap_s, args.seed)
    summary: dict = {"judge": args.judge, "mode": args.mode, "swap": not args.no_swap, "groups": args.groups,
                     "group_size": args.group_size, "spread_s": args.spread_s, "mean_gap_s": args.mean_gap_s,
                     "seed": args.seed, "arms": {}}
    for strategy in args.strategies.split(","):
        arms = {}
        for on_arrival in (True, False):
            arms[on_arrival] = run_arm(args, groups, plan, strategy, on_arrival)
        (arrival, r_arrival), (barrier, r_barrier) = arms[True], arms[False]
        summary["arms"][strategy] = {
            "arrival": arrival, "barrier": barrier,
            "latency_ratio_median": barrier["last_arrival_to_answer_s_median"]
            / max(arrival["last_arrival_to_answer_s_median"], 1e-9),
            "rewards_max_abs_diff": max(abs(r_arrival[k] - r_barrier[k]) for k in r_arrival)}
        print(json.dumps({strategy: summary["arms"][strategy]}), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
