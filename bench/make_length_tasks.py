"""Tasks for testing RLMR's length claim: the 40 bundled creative prompts, each with IFEval's
upper word limit (``length_constraints:number_words``, relation "less than").

    .venv/bin/python bench/make_length_tasks.py --out runs/length_tasks.jsonl [--max-words 40]

RLMR's claim is that a writing reward alone drives the policy to longer outputs that break
length constraints, and that the dynamic mix does not. Testing it needs tasks whose constraint
a longer answer breaks, and which the base mostly meets, so a drift shows as a fall:
``bench/probe_base_constraints.py`` found the embedded model under 40 words in 15 of 16 greedy
answers. The sentence appended is IFEval's own wording for the constraint, and IFEval's checker
(through lm-eval) verifies it. ``bench/rlmr_study.py --tasks`` splits the file by prompt.
"""

from __future__ import annotations

import argparse
import json
from importlib.resources import files
from pathlib import Path

from quillrl.constraints import read_tasks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/length_tasks.jsonl"))
    ap.add_argument("--max-words", type=int, default=40, help="answers must have fewer words than this")
    args = ap.parse_args()

    prompts = Path(str(files("quillrl.resources"))) / "creative_prompts.jsonl"
    rows = [json.loads(line) for line in prompts.read_text().splitlines() if line.strip()]
    constraint = {"id": "length_constraints:number_words",
                  "kwargs": {"relation": "less than", "num_words": args.max_words}}
    tasks = [{"id": f"{r['id']}-lt{args.max_words}",
              "prompt": f"{r['prompt']}\n\nAnswer with less than {args.max_words} words.",
              "constraints": [constraint]} for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    read_tasks(args.out)  # validates every line as a task the trainer and verifier accept
    print(json.dumps({"out": str(args.out), "tasks": len(tasks), "max_words": args.max_words}))


if __name__ == "__main__":
    main()
