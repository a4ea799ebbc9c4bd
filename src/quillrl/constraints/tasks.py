"""Reading writing tasks with their constraints checked against the check registry.

The data layer reads a task line's shape (``quillrl.data.readers.parse_task_record``: fields,
types, each constraint a ``{"id", "kwargs"}`` record); whether each constraint's id names a
check and its kwargs fit that check is the registry's to say, and the registry sits here, one
layer above data (docs/design.md, "Layout"). :func:`read_tasks` does both on every line as it
is read, so a bad task file stops with its file, line and field (``constraints.<i>``) before
any work, or with ``skip_invalid`` is counted by reason and listed, exactly as every other
reader; each task comes back holding built :class:`~quillrl.constraints.Constraint` objects,
validated once and reused for every response. Every verb and trainer reads tasks here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.jsonl import ReadResult, read_records
from ..data.readers import parse_task_record
from ..data.records import WritingTask
from ..errors import ConstraintError, DataError
from .verifier import as_constraint


def checked_task(task: WritingTask, *, path: str | None = None,
                 line: int | None = None) -> WritingTask:
    """``task`` with every constraint checked against the registry and built; a bad one is a
    ``DataError`` naming ``path``, ``line`` and the field (``constraints.<i>``), with the
    registry's message (the accepted ids, or the kwargs the check takes).

    >>> task = checked_task(WritingTask(id="t", prompt="p", constraints=[
    ...     {"id": "creative:ends_with", "kwargs": {"text": "fin"}}]))
    >>> type(task.constraints[0]).__name__
    'Constraint'
    >>> checked_task(WritingTask(id="t", prompt="p", constraints=[{"id": "creative:nope"}]),
    ...              path="t.jsonl", line=3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    quillrl.errors.DataError: t.jsonl:3: unknown constraint id 'creative:nope' ... (field 'constraints.0')
    """
    built = []
    for i, constraint in enumerate(task.constraints):
        try:
            built.append(as_constraint(constraint))
        except ConstraintError as exc:
            raise DataError(str(exc), path=path, line=line, field=f"constraints.{i}") from None
    return task.model_copy(update={"constraints": built})


def check_imported(record: Any) -> Any:
    """A record ``data import`` is about to write: a task with its constraints checked against
    the registry (a ``DataError`` if one is bad, counted and skipped by the importer), any
    other record unchanged. The records keep their plain ``{"id", "kwargs"}`` constraints."""
    if isinstance(record, WritingTask):
        checked_task(record)
    return record


def parse_task(value: Any, path: str, line: int) -> WritingTask:
    """One task line (ours, or an IFEval/IFBench raw line), its constraints checked and built;
    DataError naming the file, line and field if it is bad."""
    return checked_task(parse_task_record(value, path, line), path=path, line=line)


def read_tasks(path: str | Path, skip_invalid: bool = False) -> ReadResult[WritingTask]:
    """Read writing tasks (ours, or IFEval/IFBench raw lines) from a JSONL file, every constraint
    checked against the registry; ids are unique."""
    return read_records(path, parse_task, skip_invalid=skip_invalid, unique_key=lambda t: t.id)
