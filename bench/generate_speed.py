"""Generation speed: ``quillrl generate`` against a plain batched ``model.generate`` loop.

One process, one loaded model (the embedded one by default), the first N IFEval prompts, greedy,
the same max tokens and batch size. Both ways batch the prompts identically (longest first,
lm-eval's order, which ``quillrl generate`` uses), so the ratio is the cost of what ``generate``
adds around ``model.generate``: chat rendering, per-row finishing, the JSONL writer, the resume
scan and the final rewrite in task order. The baseline is what a user would write by hand:
``apply_chat_template`` → left-padded ``tokenizer(...)`` → ``model.generate`` → ``batch_decode``.

Then the evaluation overhead: verifying those responses (strict and loose, every constraint, as
``quillrl verify`` does) and the length/repetition analysis (``quillrl.eval.hacking``, where this
tree has it), as a share of ``generate``'s own time for them. Judging is excluded, and so is
the one-off import of lm-eval's checkers (reported apart as ``eval_first_call_cpu_s``).

Time is process CPU time (``time.process_time``; run with ``OMP_NUM_THREADS=1``): on a shared
machine wall time mostly measures the other processes. The two ways alternate, ``--reps`` times,
and the median is kept.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/generate_speed.py [--n 16] \\
        [--max-new-tokens 64] [--batch-size 8] [--reps 2]

The last line is the JSON summary.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from quillrl.backends import ChatPrompt, LocalBackend
from quillrl.eval.ifeval import join_responses, summarize, verify_task
from quillrl.constraints import read_tasks
from quillrl.data import read_responses
from quillrl.data.importers import resolve_data_root
from quillrl.data.task_sources import IFEVAL_FILE
from quillrl.eval.generate import generate_responses, length_order
from quillrl.models import DEFAULT_MODEL


def cpu_timed(fn):
    start = time.process_time()
    out = fn()
    return time.process_time() - start, out


def plain_loop(model, tokenizer, tasks, order, batch_size: int, max_new_tokens: int) -> int:
    """The hand-written baseline; returns tokens generated (each row up to and with its EOS)."""
    import torch

    tokenizer.padding_side = "left"
    texts = [tokenizer.apply_chat_template(t.messages(), tokenize=False, add_generation_prompt=True)
             for t in tasks]
    eos, tokens = tokenizer.eos_token_id, 0
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            batch = [texts[i] for i in order[s:s + batch_size]]
            enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            new = out[:, enc["input_ids"].shape[1]:]
            tokenizer.batch_decode(new, skip_special_tokens=True)
            for row in new.tolist():
                tokens += row.index(eos) + 1 if eos in row else len(row)
    return tokens


def evaluation(tasks, out: Path) -> dict:
    """What ``eval`` does after generation: verification, then the analysis where present."""
    responses = list(read_responses(out).records)
    joined, _ = join_responses(tasks, responses)
    rows = [verify_task(task, response) for task, response in joined]
    result = {"verify": summarize(rows)}
    try:
        from quillrl.eval.hacking import side_signals
    except ImportError:
        result["analysis"] = None
    else:
        result["analysis"] = side_signals([r.response for r in responses],
                                          [r.finish_reason for r in responses])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--n", type=int, default=16, help="first N IFEval prompts")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()

    tasks = read_tasks(resolve_data_root() / IFEVAL_FILE).records[: args.n]
    backend = LocalBackend(args.model, batch_size=args.batch_size, device="cpu")
    order = length_order(backend, [ChatPrompt(tuple(t.messages())) for t in tasks])
    ours, base, tokens = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            out = Path(tmp) / f"r{rep}.jsonl"
            ways = [("quillrl", lambda: generate_responses(
                        backend, tasks, out, max_new_tokens=args.max_new_tokens,
                        batch_size=args.batch_size, progress=False, model_name=args.model)),
                    ("plain", lambda: plain_loop(backend.model, backend.tokenizer, tasks, order,
                                                 args.batch_size, args.max_new_tokens))]
            for name, fn in (ways if rep % 2 == 0 else ways[::-1]):
                seconds, result = cpu_timed(fn)
                tokens[name] = result["tokens"] if name == "quillrl" else result
                (ours if name == "quillrl" else base).append(seconds)
        # the first call imports lm-eval's checkers (a one-off cost per process), timed apart
        import_seconds, _ = cpu_timed(lambda: evaluation(tasks, out))
        eval_seconds, evaluated = cpu_timed(lambda: evaluation(tasks, out))
    ours_s, base_s = statistics.median(ours), statistics.median(base)
    summary = {
        "model": args.model, "n_prompts": len(tasks), "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size, "reps": args.reps,
        "tokens_quillrl": tokens["quillrl"], "tokens_plain": tokens["plain"],
        "cpu_s_quillrl": round(ours_s, 3), "cpu_s_plain": round(base_s, 3),
        "tokens_per_cpu_s_quillrl": round(tokens["quillrl"] / ours_s, 2),
        "tokens_per_cpu_s_plain": round(tokens["plain"] / base_s, 2),
        "speed_ratio": round((tokens["quillrl"] / ours_s) / (tokens["plain"] / base_s), 3),
        "eval_cpu_s": round(eval_seconds, 4),
        "eval_first_call_cpu_s": round(import_seconds, 4),
        "eval_overhead_share": round(eval_seconds / ours_s, 5),
        "analysis_timed": evaluated["analysis"] is not None,
        "prompt_level_strict_acc": evaluated["verify"]["prompt_level_strict_acc"],
        "python": platform.python_version(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
