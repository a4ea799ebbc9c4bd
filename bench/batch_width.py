"""Generation cost by batch width: tokens per CPU second of the local backend at several
``batch_size`` values, on the same prompts, against the narrowest in the same run.

On a CPU, one decoding step of a small model reads every weight once whatever the batch, so
a row costs less in a wider batch until the matrix products stop being bound by memory. This
measures where that ends for the embedded model, which decides the ``--batch-size`` of long
greedy runs (``eval ifeval`` at 1280 tokens, reasoning judges). Greedy, the first N IFEval
prompts rendered as ``quillrl generate`` renders them, each width over the same N prompts
(longest first, as ``generate`` batches them); process CPU time, so run with
``OMP_NUM_THREADS=1``. It also counts responses whose text differs from the narrowest width's:
left padding changes float rounding, which can flip a greedy near-tie.

    OMP_NUM_THREADS=1 .venv/bin/python bench/batch_width.py [--n 64] [--widths 8,16,32,64] \\
        [--max-new-tokens 128]

The last line is the JSON summary.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from quillrl.backends import ChatPrompt, LocalBackend, SamplingParams
from quillrl.constraints import read_tasks
from quillrl.data.importers import resolve_data_root
from quillrl.data.task_sources import IFEVAL_FILE
from quillrl.models import DEFAULT_MODEL


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--n", type=int, default=64, help="first N IFEval prompts")
    ap.add_argument("--widths", default="8,16,32,64", help="batch sizes; the first is the baseline")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args()
    widths = [int(w) for w in args.widths.split(",")]

    tasks = read_tasks(resolve_data_root(args.data_root) / IFEVAL_FILE).records[:args.n]
    prompts = [ChatPrompt(tuple(t.messages())) for t in tasks]  # as quillrl generate builds them
    backend = LocalBackend(args.model, batch_size=widths[0], device="cpu")
    params = SamplingParams(max_new_tokens=args.max_new_tokens)
    backend.generate(prompts[:2], SamplingParams(max_new_tokens=4))  # warm-up allocations

    ways, texts = {}, {}
    for width in widths:
        backend.batch_size = width
        cpu, wall = time.process_time(), time.perf_counter()
        gens = backend.generate(prompts, params)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        tokens = sum(g.completion_tokens for g in gens)
        texts[width] = [g.text for g in gens]
        ways[width] = {"cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "tokens": tokens,
                       "tokens_per_cpu_s": round(tokens / cpu, 1),
                       "texts_differing_from_baseline": sum(a != b for a, b in zip(texts[width], texts[widths[0]]))}
        print(json.dumps({"width": width, **ways[width]}), flush=True)
    base = ways[widths[0]]["tokens_per_cpu_s"]
    print(json.dumps({
        "n": len(prompts), "model": args.model, "max_new_tokens": args.max_new_tokens,
        "baseline_width": widths[0], "ways": ways,
        "tokens_per_cpu_s_over_baseline": {w: round(r["tokens_per_cpu_s"] / base, 2) for w, r in ways.items()},
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }))


if __name__ == "__main__":
    main()
