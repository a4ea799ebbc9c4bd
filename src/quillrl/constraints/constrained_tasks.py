"""Turn a file of prompts into constrained writing tasks (``quillrl data augment-constraints``).

Input: any JSONL whose lines carry a ``prompt`` (writing tasks, IFEval/IFBench raw lines,
preference pairs, raw prompt lists). Prompts are de-duplicated after cleaning (WritingPrompts
tags stripped); each becomes one task with constraints drawn by
:func:`quillrl.constraints.templates.augment_prompt`, seeded per prompt so adding prompts to the
input never changes the tasks already drawn for others.

A line that is already a task keeps its constraints (its prompt asks for them) and gets new ones
that do not contradict them. A bad line (not JSON, no prompt, invalid constraints) stops the
command with its file, line and field, or with ``skip_invalid`` is counted by reason and listed
with its line number, as every reader in ``quillrl.data`` does. It lives beside the templates
and the registry it draws from and checks against, one layer above ``quillrl.data``.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.jsonl import read_records, write_jsonl
from ..data.records import WritingTask
from ..errors import DataError
from .spec import Constraint
from .tasks import parse_task
from .templates import DEFAULT_FAMILIES, augment_prompt, clean_prompt

LISTED = 20  # skipped and duplicate lines named in the summary before only counting them


@dataclass(frozen=True)
class PromptLine:
    """One usable input line: where it came from, its cleaned prompt, what it asks already."""

    line: int
    source_id: str
    prompt: str
    constraints: list[Constraint] = field(default_factory=list)
    reference: str | None = None


def parse_prompt_line(value: Any, path: str, line: int) -> PromptLine:
    """A line with a ``prompt``; a task line (``constraints`` or IFEval's ``instruction_id_list``)
    is validated as a task, so its constraints are kept. Raises DataError naming the field."""
    if not isinstance(value, dict):
        raise DataError(f"not a JSON object: got {type(value).__name__}", path=path, line=line)
    if "constraints" in value or "instruction_id_list" in value:
        task = parse_task(value, path, line)
        source_id, prompt = task.id, task.prompt
        constraints, reference = list(task.constraints), task.reference
    else:
        prompt, constraints, reference = value.get("prompt"), [], None
        source_id = value.get("id") if value.get("id") is not None else value.get("key")
        if "prompt" not in value:
            raise DataError("missing required field", path=path, line=line, field="prompt")
        if not isinstance(prompt, str):
            raise DataError(f"expected a string, got {type(prompt).__name__}", path=path,
                            line=line, field="prompt")
    if not clean_prompt(prompt):
        raise DataError("empty prompt (after removing a [WP]-style tag)", path=path, line=line,
                        field="prompt")
    return PromptLine(line, str(source_id) if source_id is not None else f"line{line}",
                      clean_prompt(prompt), constraints, reference)


def _prompt_seed(seed: int, prompt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\0{prompt}".encode()).digest()[:8], "big")


def augment_file(in_path: str | Path, out_path: str | Path, *, seed: int = 0,
                 max_per_task: int = 3, limit: int | None = None,
                 allowed: tuple[str, ...] | None = None,
                 families: tuple[str, ...] = DEFAULT_FAMILIES,
                 skip_invalid: bool = False) -> dict[str, Any]:
    """Write augmented tasks; return counts (lines, duplicates, skipped by reason, written...)."""
    read = read_records(in_path, parse_prompt_line, skip_invalid=skip_invalid)
    seen: dict[str, int] = {}
    duplicates: list[dict[str, int]] = []
    tasks: list[WritingTask] = []
    kept = 0
    for item in read:
        if item.prompt in seen:
            duplicates.append({"line": item.line, "first_line": seen[item.prompt]})
            continue
        seen[item.prompt] = item.line
        text, constraints = augment_prompt(
            item.prompt, random.Random(_prompt_seed(seed, item.prompt)), max_per_task, allowed,
            existing=item.constraints, families=families)
        kept += len(item.constraints)
        tasks.append(WritingTask(id=f"{item.source_id}-c{seed}", prompt=text,
                                 constraints=constraints, reference=item.reference))
        if limit and len(tasks) >= limit:
            break
    if not tasks:
        raise DataError("no usable prompts (every line was skipped or lacks a 'prompt'); "
                        f"skipped: {read.skipped_by_reason()}", path=str(in_path))
    write_jsonl(out_path, tasks)
    by_type: dict[str, int] = {}
    for t in tasks:
        for c in t.constraints:
            by_type[c.id] = by_type.get(c.id, 0) + 1
    total = sum(by_type.values())
    return {"lines": len(read) + len(read.skipped), "duplicates": len(duplicates),
            "duplicate_lines": duplicates[:LISTED], "skipped": len(read.skipped),
            "skipped_by_reason": read.skipped_by_reason(),
            "skipped_lines": [{"line": s.line, "reason": s.reason, "field": s.field}
                              for s in read.skipped[:LISTED]],
            "written": len(tasks), "constraints": total, "kept": kept, "added": total - kept,
            "families": list(families) if allowed is None else None,
            "by_type": dict(sorted(by_type.items()))}
