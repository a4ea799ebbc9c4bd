"""Prompt-injection flip rates of the embedded GenRM on real StoryER pairs.

Takes N pairs of the StoryER test split (imported into a temporary directory, seed 0), drawn at
random with ``--seed`` as ``quillrl judge --sample`` draws them (the file's first pairs share a
couple of prompts), appends each injection kind of ``quillrl.eval.injection`` to the
human-rejected story, and reports how often the verdict changes against the same pair without
it, in verdict-only mode (``--n-verdict`` pairs) and reasoning mode (``--n-reasoning`` pairs;
slow on a CPU). One order per pair (the seeded A/B order ``quillrl judge`` uses), no swap:
swapping would average the push over both slots and hide it. On a shared CPU,
``OMP_NUM_THREADS=1`` runs faster than two threads that wait for each other.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/injection.py [--n-verdict 30]

Prints one JSON line per mode as it finishes, then a JSON summary of both as the last line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def storyer_test(data_root: str | None) -> list:
    from quillrl.data import read_pairs
    from quillrl.data.importers import run_import

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "storyer-test.jsonl"
        run_import("storyer", path, split="test", seed=0, data_root=data_root)
        return read_pairs(path).records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--judge", default="genrm:local:smollm2-135m-instruct")
    parser.add_argument("--n-verdict", type=int, default=30)
    parser.add_argument("--n-reasoning", type=int, default=12)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and A/B order")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--pairs", default=None, help="a pairs JSONL to use instead of importing")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="default: the backend's (float32 on a CPU)")
    parser.add_argument("--backend-batch-size", type=int, default=8)
    args = parser.parse_args()

    from quillrl.eval.injection import measure_injection
    from quillrl.eval.judging import sample_pairs
    from quillrl.judges import make_judge

    if args.pairs:
        from quillrl.data import read_pairs

        pairs = read_pairs(args.pairs).records
    else:
        pairs = storyer_test(args.data_root)
    summary = {"judge": args.judge, "pairs": args.pairs or "storyer test split (seed 0)",
               "order_seed": args.seed, "max_new_tokens": args.max_new_tokens,
               "device": args.device, "dtype": args.dtype}
    for mode, n in (("verdict", args.n_verdict), ("reasoning", args.n_reasoning)):
        if n <= 0:
            continue
        options = {"max_new_tokens": args.max_new_tokens} if mode == "reasoning" else {}
        start = time.perf_counter()
        backend = {"device": args.device, "dtype": args.dtype,
                   "batch_size": args.backend_batch_size}
        with make_judge(args.judge, mode=mode, backend_options=backend, **options) as judge:
            chosen = sample_pairs(pairs, n, args.seed)
            report = measure_injection(judge, chosen, seed=args.seed, batch_size=args.batch_size)
        result = {"mode": mode, "n_pairs": len(chosen), "prompts": len({p.prompt for p in chosen}),
                  "wall_seconds": round(time.perf_counter() - start, 1), "kinds": report}
        print(json.dumps(result), flush=True)
        summary[mode] = result
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
