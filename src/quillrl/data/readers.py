"""Typed readers for task, pair and response files, and IFEval's and IFBench's raw task format.

Raw IFEval lines are ``{key, prompt, instruction_id_list, kwargs}`` with one kwargs dict per
instruction; IFBench uses the same keys, and its release writes the two list fields as
Python-literal strings (``"['count:numbers']"``), which we parse with ``ast.literal_eval``
(never ``eval``). Both become ``WritingTask(id=str(key), constraints=[...])``. Their kwargs are
kept exactly as given, ``None`` values included: IFBench fills every unused argument with
``None`` and the verifier drops them, so dropping them here too would only lose information.

Task constraints are read for their shape only (:class:`~quillrl.data.records.ConstraintRecord`):
the check registry sits one layer up, and ``quillrl.constraints.read_tasks`` (what every verb
and trainer reads tasks with) checks each line's ids and kwargs against it as the line is read.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, DataError
from .jsonl import ReadResult, json_lines, read_records, validation_error
from .records import JudgmentRecord, PreferencePair, Response, WritingTask

_RAW_TASK_FIELDS = ("key", "instruction_id_list", "kwargs")


def read_task_records(path: str | Path, skip_invalid: bool = False) -> ReadResult[WritingTask]:
    """Read writing tasks (ours, or IFEval/IFBench raw lines) from a JSONL file; ids are unique.
    Constraints are checked for shape, not against the registry: read tasks to use them with
    ``quillrl.constraints.read_tasks``."""
    return read_records(path, parse_task_record, skip_invalid=skip_invalid,
                        unique_key=lambda t: t.id)


def resolve_tasks_path(tasks: str) -> Path:
    """The file a ``tasks`` setting names: ``bundled:<name>`` is a task set shipped in
    ``quillrl.resources``; anything else is a path."""
    if tasks.startswith("bundled:"):
        from importlib.resources import files

        name = tasks.split(":", 1)[1]
        path = Path(str(files("quillrl.resources") / f"{name}.jsonl"))
        if not path.exists():
            raise ConfigError(f"no bundled task set '{name}'")
        return path
    return Path(tasks)


def read_pairs(path: str | Path, skip_invalid: bool = False) -> ReadResult[PreferencePair]:
    """Read preference pairs from a JSONL file; ids are unique."""
    return read_records(path, _parse_pair, skip_invalid=skip_invalid, unique_key=lambda p: p.id)


def read_responses(path: str | Path, skip_invalid: bool = False) -> ReadResult[Response]:
    """Read responses (``id`` or ``key``, and/or ``prompt``, plus ``response``) from a JSONL file.

    Ids may repeat: several sampled responses to one task are legitimate.
    """
    return read_records(path, _parse_response, skip_invalid=skip_invalid)


def _validate(model: type[BaseModel], value: Any, path: str, line: int):
    if not isinstance(value, dict):
        raise DataError(f"not a JSON object: got {type(value).__name__}",
                        path=path, line=line)
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise validation_error(exc, path=path, line=line) from None


def _parse_pair(value: Any, path: str, line: int) -> PreferencePair:
    return _validate(PreferencePair, value, path, line)


def parse_task_record(value: Any, path: str, line: int) -> WritingTask:
    """One task line (ours, or an IFEval/IFBench raw line) as a WritingTask; DataError if bad
    (constraints checked for shape only; ``quillrl.constraints.tasks.parse_task`` checks them all)."""
    if isinstance(value, dict) and "constraints" not in value and "instruction_id_list" in value:
        value = raw_ifeval_to_task(value, path=path, line=line)
    return _validate(WritingTask, value, path, line)


def _parse_response(value: Any, path: str, line: int) -> Response:
    if isinstance(value, dict) and "id" not in value and "key" in value:
        value = dict(value)
        key = value.pop("key")
        value["id"] = None if key is None else str(key)
    if isinstance(value, dict) and value.get("id") is None and value.get("prompt") is None:
        raise DataError("missing required field: a response needs 'id' (or 'key') or 'prompt'",
                        path=path, line=line, field="id")
    return _validate(Response, value, path, line)


def raw_ifeval_to_task(value: dict[str, Any], *, path: str | None = None,
                       line: int | None = None) -> dict[str, Any]:
    """An IFEval/IFBench raw line as a task dict, ready for ``WritingTask.model_validate``.

    Fields other than the three raw ones (``prompt`` and any metadata) pass through unchanged.

    >>> raw_ifeval_to_task({"key": 7, "prompt": "p", "instruction_id_list": "['a:b']",
    ...                     "kwargs": "[{'n': 3, 'x': None}]"})
    {'prompt': 'p', 'id': '7', 'constraints': [{'id': 'a:b', 'kwargs': {'n': 3, 'x': None}}]}
    """
    def bad(message: str, field: str) -> DataError:
        return DataError(message, path=path, line=line, field=field)

    if "id" not in value and value.get("key") is None:
        raise bad("missing required field", "key")
    ids = _literal_list(value["instruction_id_list"], "instruction_id_list", bad)
    if "kwargs" not in value:
        raise bad("missing required field", "kwargs")
    kwargs = _literal_list(value["kwargs"], "kwargs", bad)
    if len(ids) != len(kwargs):
        raise bad(f"{len(ids)} instruction ids but {len(kwargs)} kwargs dicts", "kwargs")
    for i, (cid, kw) in enumerate(zip(ids, kwargs, strict=True)):
        if not isinstance(cid, str):
            raise bad(f"expected a string, got {type(cid).__name__}", f"instruction_id_list[{i}]")
        if not isinstance(kw, dict):
            raise bad(f"expected a dict, got {type(kw).__name__}", f"kwargs[{i}]")
    task = {k: v for k, v in value.items() if k not in _RAW_TASK_FIELDS}
    task.setdefault("id", str(value.get("key")))
    task["constraints"] = [{"id": cid, "kwargs": kw} for cid, kw in zip(ids, kwargs, strict=True)]
    return task


def _literal_list(raw: Any, field: str, bad) -> list:
    """A list given as JSON, or (IFBench) as a Python-literal string."""
    if isinstance(raw, str):
        try:
            raw = ast.literal_eval(raw)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as exc:
            raise bad(f"not a Python literal list: {type(exc).__name__}", field) from None
    if not isinstance(raw, list):
        raise bad(f"expected a list, got {type(raw).__name__}", field)
    return raw


def read_judgments(path: str | Path, skip_invalid: bool = False) -> ReadResult[JudgmentRecord]:
    """Read judgment records (``quillrl judge`` output); a pair id may appear once per judge
    setting (one ``eval alignment --out`` file holds several judges), never twice for one."""
    return read_records(path, _parse_judgment, skip_invalid=skip_invalid,
                        unique_key=lambda r: f"{r.id} (judge {r.judge}, mode {r.mode}, "
                                             f"swap {r.swap}, order seed {r.order_seed})")


def _parse_judgment(value: Any, path: str, line: int) -> JudgmentRecord:
    return _validate(JudgmentRecord, value, path, line)


def read_sft_examples(path: str | Path, prefill: str) -> list[dict]:
    """GenRM SFT examples as ``quillrl distill`` writes them (or by hand: any
    ``{"messages": [...]}`` lines ending with an assistant turn that starts with ``prefill``, the
    judge's reasoning prefill, :data:`quillrl.judges.template.REASONING_PREFILL`), validated with
    file and line in every error."""
    rows = []
    for line, value in json_lines(path):
        if isinstance(value, DataError):
            raise value
        messages = value.get("messages") if isinstance(value, dict) else None
        if not (isinstance(messages, list) and len(messages) >= 2
                and all(isinstance(m, dict) and "role" in m and isinstance(m.get("content"), str)
                        for m in messages)):
            raise DataError("expected 'messages': a list of at least two {role, content} turns",
                            path=str(path), line=line, field="messages")
        if messages[-1]["role"] != "assistant":
            raise DataError("the last turn must be the assistant's (the target of SFT)",
                            path=str(path), line=line, field="messages")
        if not messages[-1]["content"].startswith(prefill):
            raise DataError(f"the assistant turn must start with the reasoning prefill "
                            f"{prefill!r}, the text the judge is handed at inference "
                            "(a file distilled before the prefill: run `quillrl distill` again)",
                            path=str(path), line=line, field="messages")
        rows.append(value)
    if not rows:
        raise DataError("no examples", path=str(path))
    return rows
