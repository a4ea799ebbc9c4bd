"""Data layer: typed task/pair/response records, JSONL readers and writers, dataset importers."""

from .jsonl import JsonlWriter, ReadResult, SkippedLine, write_jsonl
from .readers import (
    read_judgments, read_pairs, read_responses, read_sft_examples, read_tasks, resolve_tasks_path,
)
from .records import Criterion, PreferencePair, Response, WritingTask, render_principle
from .resumable import ResumableJsonl

__all__ = [
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
    "read_tasks",
    "render_principle",
    "resolve_tasks_path",
    "write_jsonl",
]
