"""Data layer: typed task/pair/response records, JSONL readers and writers, dataset importers.

Tasks to use are read with ``quillrl.constraints.read_tasks``, which checks their constraints
against the check registry (one layer up); ``read_task_records`` reads their shape only."""

from .jsonl import JsonlWriter, ReadResult, SkippedLine, write_jsonl
from .readers import (
    read_judgments, read_pairs, read_responses, read_sft_examples, read_task_records,
    resolve_tasks_path,
)
from .records import (
    ConstraintRecord, Criterion, PreferencePair, Response, WritingTask, render_principle,
)
from .resumable import ResumableJsonl

__all__ = [
    "ConstraintRecord",
    "Criterion",
    "JsonlWriter",
    "PreferencePair",
    "ReadResult",
    "Response",
    "ResumableJsonl",
    "SkippedLine",
    "WritingTask",
    "read_judgments",
    "read_pairs",
    "read_responses",
    "read_sft_examples",
    "read_task_records",
    "render_principle",
    "resolve_tasks_path",
    "write_jsonl",
]
