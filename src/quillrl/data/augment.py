"""Turn a file of prompts into constrained writing tasks (``quillrl data augment-constraints``).

Input: any JSONL whose lines carry a ``prompt`` (writing tasks, preference pairs, raw prompt
lists). Prompts are de-duplicated after cleaning (WritingPrompts tags stripped); each becomes
one task with constraints drawn by :func:`quillrl.constraints.augment.augment_prompt`, seeded
per prompt so adding prompts to the input never changes the tasks already drawn for others.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

from ..constraints.augment import augment_prompt, clean_prompt
from ..errors import DataError
from .jsonl import json_lines, write_jsonl
from .records import WritingTask


def _prompt_seed(seed: int, prompt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\0{prompt}".encode()).digest()[:8], "big")


def augment_file(in_path: str | Path, out_path: str | Path, *, seed: int = 0, max_per_task: int = 3,
                 limit: int | None = None, allowed: tuple[str, ...] | None = None) -> dict:
    """Write augmented tasks; return counts (read, duplicates, skipped by reason, written)."""
    seen: set[str] = set()
    tasks: list[WritingTask] = []
    counts = {"lines": 0, "duplicates": 0, "skipped_no_prompt": 0, "skipped_bad_json": 0}
    for line, value in json_lines(in_path):
        counts["lines"] += 1
        if isinstance(value, DataError):
            counts["skipped_bad_json"] += 1
            continue
        prompt = value.get("prompt") if isinstance(value, dict) else None
        if not isinstance(prompt, str) or not clean_prompt(prompt):
            counts["skipped_no_prompt"] += 1
            continue
        cleaned = clean_prompt(prompt)
        if cleaned in seen:
            counts["duplicates"] += 1
            continue
        seen.add(cleaned)
        text, constraints = augment_prompt(cleaned, random.Random(_prompt_seed(seed, cleaned)),
                                           max_per_task, allowed)
        source_id = str(value.get("id") or value.get("key") or f"line{line}")
        tasks.append(WritingTask(id=f"{source_id}-c{seed}", prompt=text, constraints=constraints))
        if limit and len(tasks) >= limit:
            break
    if not tasks:
        raise DataError(f"no prompts found (every line lacks a 'prompt' string): {counts}", path=str(in_path))
    write_jsonl(out_path, tasks)
    by_type: dict[str, int] = {}
    for t in tasks:
        for c in t.constraints:
            by_type[c.id] = by_type.get(c.id, 0) + 1
    return {**counts, "written": len(tasks), "constraints": sum(by_type.values()),
            "by_type": dict(sorted(by_type.items()))}
