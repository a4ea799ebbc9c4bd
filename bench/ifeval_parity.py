"""IFEval parity: ``quillrl eval ifeval`` against lm-eval 0.4.13's own ``ifeval`` task.

Both run greedily on the same model directory, with the chat template, the same max tokens,
batch size and ``--limit`` (the first N prompts in file order). Our side is the responses file
``quillrl eval ifeval --out`` writes (generated here if it is missing or incomplete; resumable);
lm-eval's side runs with ``--use_cache`` so a killed run resumes too. The comparison is per
prompt: the same response text, the same strict and loose verdict for every instruction, and the
same four figures.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/ifeval_parity.py --limit 50 \\
        --ours runs/ifeval-smollm2-1280.jsonl --cache runs/lmeval-cache/smollm2-1280

The last line is the JSON summary (:func:`quillrl.eval.ifeval.parity_report`); ``--out`` also
writes lm-eval's responses as a responses file, to diff by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from quillrl.eval.ifeval import join_responses, summarize, verify_task
from quillrl.constraints import read_tasks
from quillrl.data import read_responses, write_jsonl
from quillrl.data.importers import resolve_data_root
from quillrl.data.task_sources import IFEVAL_FILE
from quillrl.eval.generate import generate_responses
from quillrl.eval.ifeval import IFEVAL_MAX_NEW_TOKENS, lm_eval_ifeval, parity_report
from quillrl.models import DEFAULT_MODEL, resolve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL, help="embedded name or model directory")
    ap.add_argument("--tasks", type=Path, default=None, help="IFEval-format JSONL (default: shared)")
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--max-new-tokens", type=int, default=IFEVAL_MAX_NEW_TOKENS)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--ours", type=Path, required=True, help="our responses file (resumed)")
    ap.add_argument("--cache", type=Path, default=None, help="lm-eval --use_cache prefix")
    ap.add_argument("--out", type=Path, default=None, help="write lm-eval's responses here")
    ap.add_argument("--no-generate", action="store_true", help="compare with --ours as it is "
                    "(while `quillrl eval ifeval` is still writing it elsewhere)")
    args = ap.parse_args()

    tasks_path = args.tasks or resolve_data_root() / IFEVAL_FILE
    tasks = read_tasks(tasks_path).records[: args.limit]
    if not args.no_generate:
        generate_responses(args.model, tasks, args.ours, max_new_tokens=args.max_new_tokens,
                           batch_size=args.batch_size)
    responses = [r for r in read_responses(args.ours).records if r.sample == 0] \
        if args.ours.exists() else []
    joined, _ = join_responses(tasks, responses)
    rows = [verify_task(task, response) for task, response in joined]

    if args.cache:
        args.cache.parent.mkdir(parents=True, exist_ok=True)
    lm = lm_eval_ifeval(resolve(args.model), tasks_path, limit=args.limit,
                        max_gen_toks=args.max_new_tokens, batch_size=args.batch_size,
                        cache=args.cache)
    if args.out:
        write_jsonl(args.out, [{"id": k, "response": v} for k, v in lm["responses"].items()])
    report = parity_report(rows, summarize(rows), {r.id: r.response for r in responses}, lm)
    report.update(model=args.model, limit=args.limit, max_new_tokens=args.max_new_tokens,
                  batch_size=args.batch_size, ours=str(args.ours))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
