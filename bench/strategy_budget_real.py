"""Strategies at equal judge budget on real groups judged by the embedded GenRM (issue 21 §2).

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 .venv/bin/python bench/strategy_budget_real.py \\
        [--groups 16] [--samples 16] [--workdir runs/strategy_real] [--stage all|generate|judge|score]

Run it with ``--samples 8`` first to have every group of 8 judged before any group of 16 (the
pairs among samples 0–7 are the same lines either way), then with ``--samples 16``.

Three stages, each resumable (rerun the same command after a kill; it continues):

1. **generate**: the first ``--groups`` bundled creative tasks (real constraints: acrostics,
   forbidden words, word ranges, no commas...), ``--samples`` (16) samples each from the embedded
   policy at temperature ``--temperature`` (1.0), at most ``--max-new-tokens`` tokens, through
   :func:`quillrl.eval.generate.generate_responses` (``<workdir>/responses.jsonl``).
2. **judge**: every pair ``i < j`` of each group's samples, judged once by the GenRM in verdict
   mode with swap (both presentation orders, as ``serve-reward``'s default ``reward.swap``), so
   every *ordered* pair is presented exactly once, through the library's resumable judging
   (:func:`quillrl.eval.judging.judge_into`; ``<workdir>/judgments.jsonl``, one line per pair,
   id ``<task id>:<i>:<j>``, with the digests of the prompt and both texts and each order's p(A)).
   Groups are judged in task order, so a partial file holds whole groups first.
3. **score**: every strategy of ``strategy_budget.arms(n)`` scored through
   ``strategy_budget.evaluate`` — :class:`quillrl.scoring.GroupRewards` with a judge that looks
   the verdicts up (``TableJudge``); constraints verified by quillrl's verifier, RLMR mix — for
   n = 8 (samples 0–7 of each group: the first eight, not all C(16, 8) subsets) and n = 16.
   Only groups whose every pair was judged are scored. ``--out`` gets the rows as JSON. Most
   tasks' full constraint sets defeat a 135M policy (every sample violates: no group to test
   RLMR's guarantee on), so the guarantee is also checked with each of a task's constraints
   alone (``single_constraint_*`` columns; same texts and verdicts, more mixed groups).

``--probe K`` judges only the first K pairs left and prints pairs per second (to size a run).
The table's entry for ``(prompt, b, a)`` is ``1 − p(a ≻ b)``: a swap-debiased verdict,
``(p_AB(A) + 1 − p_BA(A)) / 2`` (docs/design.md, "GenRM judgment"), is antisymmetric, so it is
what the judge answers shown the pair the other way round.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from strategy_budget import Group, TableJudge, evaluate, markdown  # noqa: E402  (bench is not a package)

POLICY = "smollm2-135m-instruct"
JUDGE = "genrm:local:smollm2-135m-instruct"


class GroupPair(NamedTuple):
    """Two samples of one group, as the judging library takes a pair (``chosen`` is sample i)."""

    id: str
    prompt: str
    chosen: str
    rejected: str


def load_tasks(args):
    from quillrl.data.readers import read_tasks, resolve_tasks_path

    return read_tasks(resolve_tasks_path(args.tasks)).records[:args.groups]


def generate(args, tasks) -> dict:
    from quillrl.eval.generate import generate_responses

    return generate_responses(args.policy, tasks, args.workdir / "responses.jsonl", n=args.samples,
                              temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                              seed=args.seed, batch_size=args.batch_size, progress=False)


def group_texts(args, tasks, need: int | None = None) -> dict[str, list[str]]:
    """Each task's samples 0..k−1, the longest such run up to ``--samples``; tasks with fewer
    than ``need`` (default ``--samples``) are left out."""
    from quillrl.data.readers import read_responses

    by: dict[str, dict[int, str]] = {}
    for r in read_responses(args.workdir / "responses.jsonl").records:
        by.setdefault(r.id, {})[r.sample] = r.response
    out = {}
    for t in tasks:
        have = by.get(t.id, {})
        k = next((k for k in range(args.samples) if k not in have), args.samples)
        if k >= (args.samples if need is None else need):
            out[t.id] = [have[i] for i in range(k)]
    return out


def group_pairs(tasks, texts: dict[str, list[str]]) -> list[GroupPair]:
    return [GroupPair(f"{t.id}:{i}:{j}", t.prompt, ts[i], ts[j]) for t in tasks if (ts := texts.get(t.id))
            for i in range(len(ts)) for j in range(i + 1, len(ts))]


def judge(args, tasks) -> dict:
    from quillrl.eval.judging import judge_into, judge_settings, open_judgments, resume_pairs
    from quillrl.judges import make_judge

    pairs = group_pairs(tasks, group_texts(args, tasks))
    with make_judge(args.judge, mode="verdict", swap=True, backend_options={"batch_size": args.batch_size}) as j:
        with open_judgments(args.workdir / "judgments.jsonl", judge_settings(j, args.judge)) as writer:
            records, todo = resume_pairs(writer, pairs)
            todo = todo[:args.probe] if args.probe else todo
            start = time.perf_counter()
            judge_into(writer, records, todo, j, spec=args.judge, seed=args.seed, batch_size=args.batch_size,
                       progress=False, catch_interrupt=False)
            seconds = time.perf_counter() - start
    return {"pairs": len(pairs), "judged_now": len(todo), "seconds": round(seconds, 1),
            "pairs_per_s": round(len(todo) / seconds, 3) if todo else None,
            "forward_passes_per_s": round(2 * len(todo) / seconds, 3) if todo else None}


def score_all(args, tasks) -> list[dict]:
    from quillrl.data.readers import read_judgments

    texts = group_texts(args, tasks, need=min(map(int, args.sizes.split(","))))
    prompts = {t.id: t.prompt for t in tasks}
    table, judged, flipped = {}, set(), []
    # skip_invalid: a line being appended while we read is not whole yet
    for r in read_judgments(args.workdir / "judgments.jsonl", skip_invalid=True).records:
        tid, i, j = r.id.rsplit(":", 2)
        if tid not in texts:
            continue
        a, b = texts[tid][int(i)], texts[tid][int(j)]
        p = r.p_chosen if r.valid else None
        table[(prompts[tid], a, b)] = p
        table[(prompts[tid], b, a)] = None if p is None else 1.0 - p
        judged.add((tid, int(i), int(j)))
        flipped.append(r.flipped)
    rows = []
    for n in map(int, args.sizes.split(",")):
        # a group of n: samples 0..n−1 of a task whose every pair among them was judged
        full = [t for t in tasks if t.id in texts and len(texts[t.id]) >= n
                and all((t.id, i, j) in judged for i in range(n) for j in range(i + 1, n))]
        if not full:
            print(f"n = {n}: no group has every pair judged yet")
            continue
        groups = [Group(t.id, t.prompt, texts[t.id][:n], constraints=[t.constraints] * n) for t in full]
        # the same groups checked against each of their constraints alone: more groups with both
        # a passer and a violator for RLMR's guarantee (the verdicts, and so τ, do not change)
        single = [Group(t.id, t.prompt, texts[t.id][:n], constraints=[[c]] * n) for t in full
                  for c in t.constraints] if args.single_constraints else []
        checks = {r["strategy"]: r for r in evaluate(single, TableJudge(table), n)} if single else {}
        for row in evaluate(groups, TableJudge(table), n):
            if checks:
                one = checks[row["strategy"]]
                row.update(single_constraint_mixed_groups=one["mixed_groups"],
                           single_constraint_violator_nonneg_share=one["violator_nonneg_share"])
            rows.append(row)
            print(json.dumps(row), flush=True)
    valid = [abs(2 * v - 1) for v in table.values() if v is not None]
    flips = [f for f in flipped if f is not None]
    print(f"pairs judged: {len(table) // 2}; invalid: {sum(v is None for v in table.values()) // 2}; "
          f"the two orders crown different samples: {sum(flips) / max(len(flips), 1):.2f}; "
          f"mean |2p − 1|: {sum(valid) / max(len(valid), 1):.3f}")
    print(markdown(rows))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default="bundled:creative_tasks")
    ap.add_argument("--groups", type=int, default=16)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--sizes", default="8,16")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max-new-tokens", type=int, default=80)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--policy", default=POLICY)
    ap.add_argument("--judge", default=JUDGE)
    ap.add_argument("--workdir", type=Path, default=Path("runs/strategy_real"))
    ap.add_argument("--stage", choices=("all", "generate", "judge", "score"), default="all")
    ap.add_argument("--probe", type=int, default=0, help="judge only this many pairs, print pairs/s")
    ap.add_argument("--out", type=Path, help="write the scored rows here (JSON)")
    ap.add_argument("--single-constraints", action=argparse.BooleanOptionalAction, default=True,
                    help="also check RLMR's guarantee with each task constraint alone")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    tasks = load_tasks(args)
    if args.stage in ("all", "generate"):
        print(json.dumps({"generate": generate(args, tasks)}), flush=True)
    if args.stage in ("all", "judge"):
        print(json.dumps({"judge": judge(args, tasks)}), flush=True)
    if args.stage in ("all", "score") and not args.probe:
        rows = score_all(args, tasks)
        if args.out:
            args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
                                           indent=1))


if __name__ == "__main__":
    main()
