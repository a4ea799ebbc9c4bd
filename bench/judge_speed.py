"""Judge throughput: reasoning vs verdict-only mode; batched ``compare_many`` vs one call per pair.

The embedded model judges the first N StoryER test pairs (default 16, no swap) four ways, in one
process on one loaded model:

- verdict mode, batched: one ``compare_many`` over all N pairs (one forward pass per backend
  batch, no generation);
- verdict mode, batched as before this session's fix (``--ways`` ``verdict_batched_padded``):
  one left-padded forward pass per batch, no shared-prefix cache, the baseline the fix is
  measured against in the same run;
- verdict mode, one ``compare`` per pair;
- reasoning mode (continuing the reasoning prefill), batched: one ``compare_many`` (one
  batched ``generate``, then one batched ``choice_probs`` at the verdict positions);
- reasoning mode, batched, without reusing the generation's KV cache for the verdict probes
  (``reasoning_batched_no_reuse``: the probes rerun prompt and chain, as before the local
  backend's ``reusing_generation_cache``), the baseline for that reuse; the summary gives the
  largest p(A) difference between the two, which must be float rounding;
- reasoning mode, one ``compare`` per pair.

With ``--force-verdict`` an analysis that never wrote its verdict is closed and read there (the
embedded model never writes one unforced, so without it no probe runs and reuse has nothing to
save). ``--skip`` leaves out named ways (the per-pair reasoning way takes longest).

Every way is timed in process CPU time (``time.process_time``, all threads) and in wall time. On
a shared CPU machine wall time mostly measures the other processes, so the ratios are CPU time
there (run with ``OMP_NUM_THREADS=1``: two threads that wait for each other on a busy machine
burn CPU time without work); on a GPU (``--device cuda``) they are wall time. The cheap
verdict-mode ways are repeated ``--reps`` times in alternating order and the median kept; the
reasoning ways run once each (minutes on a CPU). Greedy decoding; the reasoning ways also report
tokens generated, since batching can change where a reply stops.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/judge_speed.py [--n 16] [--reps 1]

The last line is the JSON summary: comparisons per second for each way and the ratios.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path


def timed(fn) -> tuple[float, float, list]:
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, out


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads"


def storyer_pairs(n: int, data_root: str | None) -> list:
    from quillrl.data import read_pairs
    from quillrl.data.importers import run_import

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "storyer-test.jsonl"
        run_import("storyer", path, split="test", seed=0, data_root=data_root)
        return read_pairs(path).records[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=16, help="pairs")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--reps", type=int, default=3, help="repetitions of the verdict ways")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="default: the backend's (float32 on a CPU)")
    parser.add_argument("--pairs", default=None, help="a pairs JSONL to use instead of importing")
    parser.add_argument("--no-reasoning", dest="reasoning", action="store_false",
                        help="only the verdict-only ways (the reasoning ways take minutes a pair on a CPU)")
    parser.add_argument("--force-verdict", action="store_true",
                        help="close analyses that never wrote their verdict (reasoning ways)")
    parser.add_argument("--skip", default="", help="comma-separated ways not to run")
    args = parser.parse_args()

    from quillrl.backends.local import LocalBackend
    from quillrl.eval.judging import presented
    from quillrl.judges import GenRMJudge

    if args.pairs:
        from quillrl.data import read_pairs

        pairs = read_pairs(args.pairs).records[:args.n]
    else:
        pairs = storyer_pairs(args.n, args.data_root)
    items = [presented(p)[0] for p in pairs]
    # one backend batch holds all N prompts, so "batched" is one call per backend operation
    backend = LocalBackend(args.model, batch_size=args.n, device=args.device, dtype=args.dtype)
    verdict = GenRMJudge(backend, mode="verdict")
    reasoning_args = dict(mode="reasoning", max_new_tokens=args.max_new_tokens, force_verdict=args.force_verdict)
    reasoning = GenRMJudge(backend, **reasoning_args)
    no_reuse = GenRMJudge(LocalBackend((backend.model, backend.tokenizer), batch_size=args.n,
                                       generation_cache_bytes=0), **reasoning_args)
    skip = {w for w in args.skip.split(",") if w}
    verdict.compare_many(items[:2])  # warm-up: first-call allocations are not the judge's cost

    padded = GenRMJudge(LocalBackend((backend.model, backend.tokenizer), batch_size=args.n,
                                     prefix_cache=False), mode="verdict")
    padded.backend._last_token_probs = padded.backend._padded_last_token_probs  # the old path
    ways = {
        "verdict_batched": lambda: verdict.compare_many(items),
        "verdict_batched_padded": lambda: padded.compare_many(items),
        "verdict_per_pair": lambda: [verdict.compare(*item) for item in items],
    }
    runs: dict[str, list[tuple[float, float]]] = {k: [] for k in ways}
    ways = {k: v for k, v in ways.items() if k not in skip}
    runs = {k: v for k, v in runs.items() if k not in skip}
    for rep in range(args.reps):
        for name in (list(ways) if rep % 2 == 0 else list(ways)[::-1]):
            cpu, wall, _ = timed(ways[name])
            runs[name].append((cpu, wall))
    results = {name: {"cpu_s": statistics.median(c for c, _ in r),
                      "wall_s": statistics.median(w for _, w in r)} for name, r in runs.items()}
    reasoning_ways = (("reasoning_batched", lambda: reasoning.compare_many(items)),
                      ("reasoning_batched_no_reuse", lambda: no_reuse.compare_many(items)),
                      ("reasoning_per_pair", lambda: [reasoning.compare(*it) for it in items]))
    p_a: dict[str, list] = {}
    for name, fn in reasoning_ways if args.reasoning else ():
        if name in skip:
            continue
        cpu, wall, judgments = timed(fn)
        p_a[name] = [j.p_a for j in judgments]
        results[name] = {"cpu_s": cpu, "wall_s": wall,
                         "completion_tokens": sum(j.cost.completion_tokens for j in judgments),
                         "valid": sum(j.valid for j in judgments)}
    for r in results.values():
        r["per_s_cpu"] = len(items) / r["cpu_s"]
        r["per_s_wall"] = len(items) / r["wall_s"]

    # CPU time on a CPU (wall time there mostly measures other processes); wall time on a GPU,
    # where the host's CPU time says little about the work done
    clock = "per_s_wall" if args.device.startswith("cuda") else "per_s_cpu"

    def ratio(a: str, b: str, key: str = clock) -> float:
        return results[a][key] / results[b][key]

    def has(*names: str) -> bool:
        return all(n in results for n in names)

    summary = {
        "n": len(items), "model": args.model, "ratios_from": clock,
        "max_new_tokens": args.max_new_tokens, "device": _device_name(args.device),
        "ways": {k: {m: round(v, 4) for m, v in r.items()} for k, r in results.items()},
        "force_verdict": args.force_verdict,
    }
    for key, a, b in (("batched_over_per_pair_verdict", "verdict_batched", "verdict_per_pair"),
                      ("padded_batched_over_per_pair_verdict", "verdict_batched_padded", "verdict_per_pair"),
                      ("verdict_over_reasoning_batched", "verdict_batched", "reasoning_batched"),
                      ("verdict_over_reasoning_per_pair", "verdict_per_pair", "reasoning_per_pair"),
                      ("batched_over_per_pair_reasoning", "reasoning_batched", "reasoning_per_pair"),
                      ("reuse_over_no_reuse_reasoning", "reasoning_batched", "reasoning_batched_no_reuse")):
        if has(a, b):
            summary[key] = round(ratio(a, b), 2)
    if has("reasoning_batched", "reasoning_batched_no_reuse"):
        both = list(zip(p_a["reasoning_batched"], p_a["reasoning_batched_no_reuse"]))
        summary["reuse_max_abs_p_a_difference"] = max(
            (abs(x - y) for x, y in both if x is not None and y is not None), default=None)
        summary["reuse_same_validity"] = all((x is None) == (y is None) for x, y in both)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
