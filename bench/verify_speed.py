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

    .venv/bin/python bench/verify_speed.py [--reps 7] [--data ../shared/data/ifeval]

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


def load(folder: Path):
    inputs = [json.loads(line) for line in (folder / "input_data.jsonl").open()]
    path = folder / "input_response_data_gpt4_20231107_145030.jsonl"
    by_prompt = {r["prompt"]: r["response"] for r in map(json.loads, path.open())}
    # The one prompt without an exactly matching response is judged on "" by both sides.
    return [(task, by_prompt.get(task["prompt"], "")) for task in inputs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ifeval")
    args = parser.parse_args()

    from quillrl.constraints import Constraint, verify
    from quillrl.constraints.ifeval import lm_eval_registry

    lm_eval_registry()  # import lm-eval (with offline punkt data) before any timing
    from lm_eval.tasks.ifeval import utils

    items = load(args.data)
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
    for _ in range(args.reps):
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
    print(f"{n} responses x (strict + loose), {args.reps} repetitions, "
          f"python {platform.python_version()}, {platform.machine()}")
    print(f"{'':20}{'best cpu s':>11}{'median cpu s':>13}{'median wall s':>14}"
          f"{'responses/s':>13}{'best vs lm-eval':>17}{'median vs lm-eval':>19}")
    for name in runs:
        print(f"{name:20}{best[name]:11.3f}{median[name]:13.3f}{median_wall[name]:14.3f}"
              f"{n / best[name]:13.1f}{best[name] / best['lm_eval']:16.3f}x"
              f"{median[name] / median['lm_eval']:18.3f}x")
    summary = {"n": n, "reps": args.reps,
               **{f"best_cpu_s_{k}": round(v, 4) for k, v in best.items()},
               **{f"median_cpu_s_{k}": round(v, 4) for k, v in median.items()},
               **{f"median_wall_s_{k}": round(v, 4) for k, v in median_wall.items()},
               **{f"overhead_{k.removeprefix('quillrl_')}": {
                   "best": round(best[k] / best["lm_eval"] - 1, 4),
                   "median": round(median[k] / median["lm_eval"] - 1, 4)}
                  for k in runs if k != "lm_eval"}}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
