"""``quillrl serve`` throughput: 50 concurrent short chat requests against the same 50 sent one
at a time, on one server and one loaded model (the embedded one by default), on loopback.

Each request: a short user message (the first words of a StoryER prompt), ``max_tokens``
(default 8), greedy. The serial arm is what the old server did at best (one request holding the
model at a time); the concurrent arm lets the scheduler batch prompts across requests. Reported:
errors, requests per second of wall time and of process CPU time (all threads), latency
p50/p99, generate calls made; the ratios concurrent/serial. Arms alternate ``--reps`` times.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/serve_throughput.py [--requests 50] [--reps 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

PROMPTS = ["Write a story about a lighthouse keeper.", "Describe the first snow in a small town.",
           "A robot learns to paint.", "Tell a tale about a lost key.", "A letter from the sea."]


async def _send(client, url: str, i: int, max_tokens: int) -> tuple[float, bool]:
    body = {"max_tokens": max_tokens, "temperature": 0,
            "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)] + f" ({i})"}]}
    start = time.perf_counter()
    try:
        r = await client.post(url + "/chat/completions", json=body)
        return time.perf_counter() - start, r.status_code == 200
    except Exception:  # noqa: BLE001 - a failed request is counted
        return time.perf_counter() - start, False


def arm(url: str, n: int, max_tokens: int, concurrent: bool) -> dict:
    import httpx

    async def run():
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(timeout=1800, limits=limits) as client:
            if concurrent:
                return await asyncio.gather(*(_send(client, url, i, max_tokens) for i in range(n)))
            return [await _send(client, url, i, max_tokens) for i in range(n)]

    cpu, wall = time.process_time(), time.perf_counter()
    got = asyncio.run(run())
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    latencies = sorted(s for s, _ in got)
    ok = sum(o for _, o in got)
    return {"requests": n, "errors": n - ok, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "per_wall_s": ok / wall, "per_cpu_s": ok / cpu, "p50_s": statistics.median(latencies),
            "p99_s": latencies[max(0, int(0.99 * n) - 1)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--out", default="runs/bench_serve_throughput.json")
    args = parser.parse_args()
    from quillrl.backends.local import LocalBackend
    from quillrl.backends.server import OpenAIServer

    backend = LocalBackend(args.model, batch_size=args.max_batch, device="cpu")
    runs: dict[str, list[dict]] = {"serial": [], "concurrent": []}
    with OpenAIServer(backend, "127.0.0.1", 0, max_batch=args.max_batch).start() as server:
        arm(server.url, 4, args.max_tokens, False)  # warm-up
        for rep in range(args.reps):
            for name in (["serial", "concurrent"] if rep % 2 == 0 else ["concurrent", "serial"]):
                before = server.scheduler.batches
                result = arm(server.url, args.requests, args.max_tokens, name == "concurrent")
                result["generate_calls"] = server.scheduler.batches - before
                runs[name].append(result)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    summary = {"model": args.model, "requests": args.requests, "max_tokens": args.max_tokens, "reps": args.reps,
               "errors": sum(r["errors"] for rs in runs.values() for r in rs), "runs": runs,
               "ratio_wall": median("concurrent", "per_wall_s") / median("serial", "per_wall_s"),
               "ratio_cpu": median("concurrent", "per_cpu_s") / median("serial", "per_cpu_s")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
