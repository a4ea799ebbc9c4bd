"""What every CLI verb shares: the JSON summary line, error handling, JSONL output."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

import typer

from ..errors import QuillError


def print_summary(summary: dict[str, Any]) -> None:
    """Print the verb's JSON summary; by contract it is the last line on stdout."""
    sys.stdout.flush()
    print(json.dumps(summary, ensure_ascii=False, default=_jsonable), flush=True)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def user_errors(fn: Callable) -> Callable:
    """Turn a QuillError into a one-line message on stderr and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except QuillError as exc:
            typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=2) from None

    return wrapper
