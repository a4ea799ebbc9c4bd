"""Rebuild the demo's bundled task sets: the 40 bundled creative prompts, each asked for a title
in double angular brackets (IFEval's ``detectable_format:title``), split by prompt (seed 0, half
held out) into ``demo_train.jsonl`` (``train policy``) and ``demo_heldout.jsonl`` (``eval
policy``), so the demo's before/after is measured on prompts never trained on.

    .venv/bin/python bench/make_demo_tasks.py

Why this constraint: the embedded 135M model already meets most single constraints of the
bundled set when decoding greedily (it often restates the instruction), but gives a title in
only about 60% of greedy answers and under a third of sampled ones, and a title is a format a
few GRPO steps can teach; it sits at the start of the story, so completions clipped at the
training length can still pass (see docs/results.md, "Policy evaluation").
"""

from __future__ import annotations

import json
import tempfile
from importlib.resources import files
from pathlib import Path

from quillrl.constraints.constrained_tasks import augment_file
from quillrl.data.split import split_by_group

SEED, HELD_OUT = 0, 0.5


def main() -> None:
    resources = Path(str(files("quillrl.resources")))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "title_tasks.jsonl"
        augment_file(resources / "creative_prompts.jsonl", out, seed=SEED, max_per_task=1,
                     limit=None, allowed=("detectable_format:title",))
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    sizes = {}
    for name, split in (("demo_train", "train"), ("demo_heldout", "test")):
        part = split_by_group(rows, lambda r: r["id"], split, seed=SEED, test_fraction=HELD_OUT)
        (resources / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
        sizes[name] = len(part)
    print(json.dumps(sizes))


if __name__ == "__main__":
    main()
