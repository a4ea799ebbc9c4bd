"""JSONL reading and writing with errors that name the file, the line and the field.

Reading: every non-blank line is parsed and validated; a bad line raises ``DataError``, or with
``skip_invalid=True`` is recorded in ``ReadResult.skipped`` with its line number and reason, so
nothing is ever dropped silently. Blank lines carry no record and are passed over.

Writing: ``JsonlWriter`` writes and flushes one complete line per record, so an interrupted run
leaves a valid file that a resumed run reopens in append mode, skipping the ids already written.
``write_jsonl`` writes a whole file at once through a temporary file, so it is never half-written.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import DataError

T = TypeVar("T")


@dataclass(frozen=True)
class SkippedLine:
    """A line left out by ``skip_invalid=True``: where it was and why."""

    line: int
    reason: str
    field: str | None = None

    @property
    def kind(self) -> str:
        """The reason without line-specific detail, for counting skips by kind."""
        for kind in ("duplicate id", "unknown constraint id"):
            if self.reason.startswith(kind):
                return kind
        if self.field is None:
            return self.reason.split(":")[0]
        # "constraints.3.kwargs" and "constraints.0.kwargs" are the same kind of problem.
        where = re.sub(r"(?<=\.)\d+(?=\.|$)|\[\d+\]", "*", self.field)
        if self.reason.startswith("missing required field"):
            return f"missing field '{where}'"
        return f"invalid field '{where}'"


@dataclass
class ReadResult(Generic[T]):
    """The records read from one file and the lines skipped; iterates like a list of records."""

    path: str
    records: list[T] = field(default_factory=list)
    skipped: list[SkippedLine] = field(default_factory=list)

    def __iter__(self) -> Iterator[T]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index):
        return self.records[index]

    def skipped_by_reason(self) -> dict[str, int]:
        """Counts of skipped lines by kind (``missing field 'rejected'``, ``not valid JSON``...)."""
        counts: dict[str, int] = {}
        for s in self.skipped:
            counts[s.kind] = counts.get(s.kind, 0) + 1
        return counts


def json_lines(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, value)`` for each non-blank line of a JSONL file.

    A line that is not JSON (or is nested too deeply for the parser) yields a ``DataError`` as
    its value instead of raising, so a reader with ``skip_invalid`` can count it and go on. Line
    numbers start at 1 and count blank lines, so they match what an editor shows. A file that is
    not JSONL at all (UTF-16 text, or a JSON array) raises a ``DataError`` saying so, since
    skipping every one of its lines would only hide that.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("is a directory, not a file" if path.is_dir() else "file not found",
                        path=str(path))
    # Binary lines: only "\n" ends a line (text mode would also split on a lone "\r"), and a
    # line that is not UTF-8 becomes one bad line instead of an exception mid-file.
    first = True
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if first and raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise DataError("the file is UTF-16; save it as UTF-8", path=str(path))
            try:
                text = raw.decode("utf-8-sig")  # -sig: tolerate a byte-order mark
            except UnicodeDecodeError as exc:
                first = False
                yield number, DataError(f"not valid UTF-8 at byte {exc.start + 1}",
                                        path=str(path), line=number)
                continue
            if not text.strip():
                continue
            value = parse_json_text(text, path=str(path), line=number)
            if first and text.lstrip().startswith("[") and (
                    isinstance(value, list) or isinstance(value, DataError)):
                raise DataError(JSON_ARRAY_HINT, path=str(path), line=number)
            first = False
            yield number, value


JSON_ARRAY_HINT = ("this looks like a JSON array; JSONL has one JSON object per line "
                   "(convert it with: jq -c '.[]' FILE > FILE.jsonl)")


def parse_json_text(text: str, *, path: str, line: int | None = None) -> Any:
    """``json.loads(text)``, or a ``DataError`` (returned, not raised) naming the file, the line
    and the column; a nesting too deep for the parser is an error too, not a RecursionError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} " if line is None else ""
        return DataError(f"not valid JSON: {exc.msg} at {where}column {exc.colno}",
                         path=path, line=line)
    except RecursionError:
        return DataError("not valid JSON: nested too deeply", path=path, line=line)


_JSON_NAMES = {dict: "object", list: "array", str: "string", int: "number", float: "number",
               bool: "boolean", type(None): "null"}


def load_json_file(path: str | Path, expected: type | tuple[type, ...]) -> Any:
    """A whole-file JSON document of the ``expected`` top-level type (``list``, ``dict``), or a
    ``DataError`` naming the file and what is wrong (encoding, syntax, nesting, type)."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"not valid UTF-8 at byte {exc.start + 1}", path=str(path)) from None
    value = parse_json_text(text, path=str(path))
    if isinstance(value, DataError):
        raise value
    if not isinstance(value, expected):
        kinds = expected if isinstance(expected, tuple) else (expected,)
        names = " or ".join(_JSON_NAMES.get(t, t.__name__) for t in kinds)
        raise DataError(f"the top level must be a JSON {names}, got a JSON "
                        f"{_JSON_NAMES.get(type(value), type(value).__name__)}", path=str(path))
    return value


def validation_error(exc: ValidationError, *, path: str, line: int) -> DataError:
    """A DataError for the first problem pydantic found, naming the field by its dotted path."""
    first = exc.errors()[0]
    field_name = ".".join(str(part) for part in first["loc"]) or None
    kind = first["type"]
    if kind == "missing":
        message = "missing required field"
    elif kind == "value_error":
        # Our own validators' messages (e.g. an unknown constraint id) are already complete.
        cause = (first.get("ctx") or {}).get("error")
        message = str(cause) if cause is not None else first["msg"]
    else:
        message = first["msg"]
        if kind.endswith("_type"):
            message += f", got {type(first.get('input')).__name__}"
    more = len(exc.errors()) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''} on this line)"
    return DataError(message, path=path, line=line, field=field_name)


def read_records(path: str | Path, parse: Callable[[Any, str, int], T], *,
                 skip_invalid: bool = False, unique_key: Callable[[T], str] | None = None,
                 ) -> ReadResult[T]:
    """Read a JSONL file, turning each parsed line into a record with ``parse(value, path, line)``.

    ``parse`` raises DataError for a bad line. ``unique_key`` (e.g. the record id) makes a repeated
    key a bad line too, since resumable commands and joins by id would silently pick one copy.
    """
    result: ReadResult[T] = ReadResult(path=str(path))
    first_seen: dict[str, int] = {}
    for number, value in json_lines(path):
        try:
            if isinstance(value, DataError):
                raise value
            record = parse(value, str(path), number)
            if unique_key is not None:
                key = unique_key(record)
                if key in first_seen:
                    raise DataError(f"duplicate id {key!r} (first on line {first_seen[key]})",
                                    path=str(path), line=number, field="id")
                first_seen[key] = number
        except DataError as exc:
            if not skip_invalid:
                raise
            result.skipped.append(SkippedLine(line=number, reason=_reason(exc), field=exc.field))
            continue
        result.records.append(record)
    return result


def _reason(exc: DataError) -> str:
    """The DataError message without the ``path:line:`` prefix and ``(field ...)`` suffix,
    which SkippedLine keeps apart."""
    text = str(exc)
    prefix = ":".join(str(x) for x in (exc.path, exc.line) if x is not None)
    if prefix and text.startswith(prefix + ": "):
        text = text[len(prefix) + 2:]
    suffix = f" (field '{exc.field}')"
    return text[:-len(suffix)] if exc.field and text.endswith(suffix) else text


def to_json_dict(record: Any) -> dict[str, Any]:
    """A record as a plain JSON-ready dict: pydantic models through their own dump, dicts as is."""
    if isinstance(record, BaseModel):
        dump = getattr(record, "to_json_dict", None)
        return dump() if dump is not None else record.model_dump(mode="json")
    if isinstance(record, dict):
        return record
    raise TypeError(f"cannot write a {type(record).__name__} as a JSONL record; "
                    "pass a pydantic model or a dict")


def _line(record: Any) -> str:
    # ensure_ascii=False keeps non-English text readable in the file; one record never spans
    # lines because json.dumps escapes newlines inside strings.
    return json.dumps(to_json_dict(record), ensure_ascii=False) + "\n"


def write_jsonl(path: str | Path, records: Iterable[Any]) -> int:
    """Write ``records`` (models or dicts) to ``path``, replacing it; returns how many were written.

    The file is written beside its target and renamed into place, so a crash leaves either the
    old file or the complete new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    count = 0
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            for record in records:
                fh.write(_line(record))
                count += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def append_whole_line(fh: Any, line: bytes, size: int) -> int:
    """Write ``line`` to the unbuffered binary file ``fh`` whose whole lines end at byte ``size``;
    return the new size. A write that fails part-way (a full disk: ENOSPC) is cut back to
    ``size`` before the error goes up, so the file stays valid and a rerun resumes it."""
    try:
        view = memoryview(line)
        while view:
            view = view[fh.write(view):]
    except OSError:
        try:
            os.ftruncate(fh.fileno(), size)
        except OSError:
            pass  # nothing more to do; a resume cuts the torn line
        raise
    return size + len(line)


class JsonlWriter:
    """Write records to a new file, one complete, flushed line at a time. An output that a
    rerun continues is a :class:`~quillrl.data.resumable.ResumableJsonl` (one rule for reading
    back, checking and repairing a file: docs/design.md, "Resumable outputs").

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "out.jsonl"
    >>> with JsonlWriter(p) as w:
    ...     w.write({"id": "a", "x": 1})
    >>> p.read_text()
    '{"id": "a", "x": 1}\\n'
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.written = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("wb", buffering=0)
        self._size = 0  # bytes of whole lines written so far

    def write(self, record: Any) -> None:
        """Write one record as one line, unbuffered, so it survives an interrupt. A write that
        fails part-way (a full disk: ENOSPC) is cut back to the last whole line before the
        error goes up, so the file stays valid and a rerun resumes it."""
        data = to_json_dict(record)
        self._size = append_whole_line(self._fh, _line(data).encode("utf-8"), self._size)
        self.written += 1

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
