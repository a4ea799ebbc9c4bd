"""Throughput of ``quillrl.constraints.verify`` against lm-eval's IFEval checkers called directly.

Both sides judge GPT-4's 541 IFEval responses, strict and loose, in the same process. The
sides take turns response by response (in rotating order), so a burst of load from other
processes hits them alike; each repetition sums each side's time over the 541 responses, and we
report the best and the median repetition, in process CPU time (``time.process_time``: on a
shared machine, wall time mostly measures the other processes) and in wall time.

- lm-eval: ``test_instruction_following_strict`` and ``_loose`` from
  ``lm_eval.tasks.ifeval.utils``, as lm-eval's own ``process_results`` calls them (they build
  each instruction's checker on every call).
- quillrl (built once): ``verify(response, constraints)`` with the ``Constraint`` objects made
  once, as a training loop or ``quillrl verify`` holds them.
- quillrl (from dicts): ``verify(response, [{"id", "kwargs"}, ...])``, as a TRL reward function
  calls it with a sample's constraints as dicts (validated on first sight, then served from
  verify's cache of built constraints).
- quillrl (fresh): new ``Constraint`` objects on every call, so every constraint is validated and
  built every time: our layer at its worst.

Then, per family (``--part families``), quillrl's own throughput on two sets, strict + loose:
IFEval (GPT-4's 541 responses) and IFBench (its 293 sample responses that join a prompt), each
response verified with the sentence and token caches emptied first (they serve one response's
loose variants and checks, never a later response); and the cost of each check alone: every
(response, constraint) of the two sets verified strict + loose with the caches emptied, the
mean per check id, the median over ids, and the 5 slowest with their share of all check time.

    .venv/bin/python bench/verify_speed.py [--reps 7] [--part all|lm-eval|families]
        [--data ../shared/data]

The last line is a JSON summary; ``overhead_*`` is quillrl's time over lm-eval's, minus 1.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_ifbench(folder: Path):
    """IFBench's (task, response) pairs, joined as its evaluation_lib joins them."""
    by_prompt = {}
    for record in map(json.loads, (folder / "sample_output.jsonl").open()):
        by_prompt[record["prompt"]] = by_prompt[record["prompt"].strip()] = record["response"]
    tasks = [json.loads(line) for line in (folder / "IFBench_test.jsonl").open()]
    pairs = [(t, by_prompt.get(t["prompt"], by_prompt.get(t["prompt"].strip()))) for t in tasks]
    return [(t, r) for t, r in pairs if r is not None]


def load(folder: Path):
    inputs = [json.loads(line) for line in (folder / "input_data.jsonl").open()]
    path = folder / "input_response_data_gpt4_20231107_145030.jsonl"
    by_prompt = {r["prompt"]: r["response"] for r in map(json.loads, path.open())}
    # The one prompt without an exactly matching response is judged on "" by both sides.
    return [(task, by_prompt.get(task["prompt"], "")) for task in inputs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--part", choices=("all", "lm-eval", "families"), default="all")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    args = parser.parse_args()
    summary: dict = {"reps": args.reps}
    if args.part in ("all", "lm-eval"):
        summary.update(against_lm_eval(load(args.data / "ifeval"), args.reps))
    if args.part in ("all", "families"):
        summary.update(per_family(load(args.data / "ifeval"), load_ifbench(args.data / "ifbench"),
                                  args.reps))
    print(json.dumps(summary))


def per_family(ifeval_items, ifbench_items, reps: int) -> dict:
    """Responses/s per set, and each check's cost alone (see the module docstring)."""
    from quillrl.constraints import Constraint, verify
    from quillrl.constraints.ifbench.text import clear_caches

    sets = {name: [([Constraint(id=i, kwargs=k) for i, k in
                     zip(t["instruction_id_list"], t["kwargs"])], t["prompt"], r)
                   for t, r in items]
            for name, items in (("ifeval", ifeval_items), ("ifbench", ifbench_items))}

    def judge(constraints, prompt, response):
        verify(response, constraints, prompt=prompt)
        verify(response, constraints, loose=True, prompt=prompt)

    for rows in sets.values():  # warm up: imports, punkt, stopwords, lm-eval's checkers
        for row in rows:
            judge(*row)
    cpu = {name: [] for name in sets}
    for rep in range(reps):
        for name in (list(sets) if rep % 2 == 0 else list(sets)[::-1]):
            total = 0.0
            for row in sets[name]:
                clear_caches()
                start = time.process_time()
                judge(*row)
                total += time.process_time() - start
            cpu[name].append(total)
    per_check: dict[str, dict[str, list[float]]] = {name: {} for name in sets}
    for rep in range(reps):
        for name, rows in sets.items():
            for constraints, prompt, response in rows:
                for c in constraints:
                    clear_caches()
                    start = time.process_time()
                    judge([c], prompt, response)
                    per_check[name].setdefault(c.id, []).append(time.process_time() - start)
    print(f"\nper family: strict + loose, caches emptied per response, {reps} repetitions")
    print(f"{'set':10}{'responses':>10}{'best cpu s':>11}{'median cpu s':>13}{'responses/s':>13}")
    out: dict = {}
    for name in sets:
        best, median = min(cpu[name]), statistics.median(cpu[name])
        n = len(sets[name])
        print(f"{name:10}{n:10}{best:11.3f}{median:13.3f}{n / median:13.1f}")
        out[f"responses_per_s_{name}"] = round(n / median, 1)
    for name, checks in per_check.items():
        mean = {cid: statistics.mean(ts) for cid, ts in checks.items()}
        total = sum(sum(ts) for ts in checks.values())
        mid = statistics.median(mean.values())
        slowest = sorted(mean, key=mean.get, reverse=True)
        print(f"\n{name}: {len(mean)} checks, median {1000 * mid:.3f} ms per verdict "
              "(strict + loose); the 5 slowest:")
        print(f"{'check':36}{'ms':>9}{'x median':>10}{'share':>8}")
        rows = []
        for cid in slowest[:5]:
            share = sum(checks[cid]) / total
            print(f"{cid:36}{1000 * mean[cid]:9.3f}{mean[cid] / mid:10.1f}{share:8.1%}")
            rows.append({"id": cid, "ms": round(1000 * mean[cid], 3),
                         "x_median": round(mean[cid] / mid, 1), "share": round(share, 3)})
        over = [cid for cid in slowest if mean[cid] > 10 * mid]
        print(f"over 10x the median: {len(over)} ({', '.join(over) or 'none'})")
        out[f"checks_{name}"] = {"n": len(mean), "median_ms": round(1000 * mid, 4),
                                 "slowest": rows, "over_10x_median": over}
    out["ifbench_over_ifeval_throughput"] = round(
        out["responses_per_s_ifbench"] / out["responses_per_s_ifeval"], 2)
    return out


def against_lm_eval(items, reps: int) -> dict:
    """quillrl's verify against lm-eval's own IFEval functions (see the module docstring)."""
    from quillrl.constraints import Constraint, verify
    from quillrl.constraints.ifeval import lm_eval_registry

    lm_eval_registry()  # import lm-eval (with offline punkt data) before any timing
    from lm_eval.tasks.ifeval import utils

    lm_inputs = [(utils.InputExample(key=t["key"], instruction_id_list=t["instruction_id_list"],
                                     prompt=t["prompt"], kwargs=t["kwargs"]), r) for t, r in items]
    specs = [([{"id": i, "kwargs": k} for i, k in zip(t["instruction_id_list"], t["kwargs"])],
              t["prompt"], r) for t, r in items]
    built = [([Constraint.model_validate(c) for c in cs], p, r) for cs, p, r in specs]

    def lm_eval_direct(i):
        inp, response = lm_inputs[i]
        utils.test_instruction_following_strict(inp, response)
        utils.test_instruction_following_loose(inp, response)

    def quillrl_built(i):
        constraints, prompt, response = built[i]
        verify(response, constraints, prompt=prompt)
        verify(response, constraints, loose=True, prompt=prompt)

    def quillrl_dicts(i):
        constraints, prompt, response = specs[i]
        verify(response, constraints, prompt=prompt)
        verify(response, constraints, loose=True, prompt=prompt)

    def quillrl_fresh(i):
        constraints, prompt, response = specs[i]
        verify(response, [Constraint(**c) for c in constraints], prompt=prompt)
        verify(response, [Constraint(**c) for c in constraints], loose=True, prompt=prompt)

    runs = {"lm_eval": lm_eval_direct, "quillrl_built_once": quillrl_built,
            "quillrl_from_dicts": quillrl_dicts, "quillrl_fresh": quillrl_fresh}
    order = list(runs.items())
    for i in range(len(items)):  # warm up: punkt model, regex caches, verify's constraint cache
        for _, fn in order:
            fn(i)
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    wall: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(reps):
        rep_cpu, rep_wall = dict.fromkeys(runs, 0.0), dict.fromkeys(runs, 0.0)
        for i in range(len(items)):
            order = order[1:] + order[:1]  # rotate, so no side always runs first
            for name, fn in order:
                start_cpu, start_wall = time.process_time(), time.perf_counter()
                fn(i)
                rep_cpu[name] += time.process_time() - start_cpu
                rep_wall[name] += time.perf_counter() - start_wall
        for name in runs:
            cpu[name].append(rep_cpu[name])
            wall[name].append(rep_wall[name])

    best = {name: min(t) for name, t in cpu.items()}
    median = {name: statistics.median(t) for name, t in cpu.items()}
    median_wall = {name: statistics.median(t) for name, t in wall.items()}
    n = len(items)
    print(f"{n} responses x (strict + loose), {reps} repetitions, "
          f"python {platform.python_version()}, {platform.machine()}")
    print(f"{'':20}{'best cpu s':>11}{'median cpu s':>13}{'median wall s':>14}"
          f"{'responses/s':>13}{'best vs lm-eval':>17}{'median vs lm-eval':>19}")
    for name in runs:
        print(f"{name:20}{best[name]:11.3f}{median[name]:13.3f}{median_wall[name]:14.3f}"
              f"{n / best[name]:13.1f}{best[name] / best['lm_eval']:16.3f}x"
              f"{median[name] / median['lm_eval']:18.3f}x")
    return {"n": n,
            **{f"best_cpu_s_{k}": round(v, 4) for k, v in best.items()},
            **{f"median_cpu_s_{k}": round(v, 4) for k, v in median.items()},
            **{f"median_wall_s_{k}": round(v, 4) for k, v in median_wall.items()},
            **{f"overhead_{k.removeprefix('quillrl_')}": {
                "best": round(best[k] / best["lm_eval"] - 1, 4),
                "median": round(median[k] / median["lm_eval"] - 1, 4)}
               for k in runs if k != "lm_eval"}}


if __name__ == "__main__":
    main()
