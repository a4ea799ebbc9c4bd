"""What every CLI verb shares: the ``app`` it registers on, the JSON summary line, error handling, output-path checks,
option bounds and the report of skipped lines.

New verbs call :func:`check_output_path` on every file or directory they write (before any
work), :func:`at_least` on every count option, and :func:`report_skipped` for every file read
with ``--skip-invalid``, so every verb refuses and reports the same things the same way
(docs/design.md, "Reliability").
"""

from __future__ import annotations

import errno
import functools
import math
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import typer

from ..cpu_threads import current_choice
from ..errors import ConfigError, QuillError

# The ``quillrl`` command; each verb module adds its verbs to it when imported (cli/__init__.py
# imports them all). It lives here, not in __init__, so a verb imports it without a cycle.
app = typer.Typer(
    name="quillrl",
    help="Train language models that write well and follow instructions (RLCS + RLMR).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# How many skipped lines a verb lists one by one on stderr before only counting them.
MAX_LISTED = 20

SKIP_INVALID_HELP = ("Leave out bad lines, counted and listed by reason with their line "
                     "numbers, instead of stopping at the first.")


def print_summary(summary: dict[str, Any]) -> None:
    """Print the verb's JSON summary; by contract it is the last line on stdout. It carries the
    CPU thread choice made at start (``cpu_threads``; docs/design.md, "A busy machine")."""
    choice = current_choice()
    if choice is not None and "cpu_threads" not in summary:
        summary = {**summary, "cpu_threads": choice.as_dict()}
    sys.stdout.flush()
    print(json.dumps(summary, ensure_ascii=False, default=_jsonable), flush=True)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def user_errors(fn: Callable) -> Callable:
    """Turn a QuillError into a one-line message on stderr and exit status 2 (no traceback).

    Errors that hostile input provokes in libraries below us (a file we cannot open, a nesting
    too deep for the JSON parser) are user errors too: they get the same one line, naming the
    file where Python says which.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except QuillError as exc:
            message = str(exc)
        except OSError as exc:
            # A file-system error below us: a directory where a file was expected, a permission,
            # a full disk (ENOSPC), a path under /proc. Outputs written line by line stay valid
            # up to their last whole line (JsonlWriter), so a rerun resumes them.
            where = f"{exc.filename}: " if exc.filename else ""
            message = f"{where}{exc.strerror or exc}"
            if exc.errno == errno.ENOSPC:
                message += "; free some space and run the same command again to resume"
        except RecursionError:
            message = "input nested too deeply to read"
        typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from None

    return wrapper


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(path: Path | str | None, *, option: str = "--out",
                      inputs: Iterable[Path | str | None] = (), directory: bool = False,
                      ) -> Path | None:
    """Refuse, before any work, an output the verb could not write or must not write.

    ``path`` is what the user gave for ``option``: a file (``directory=False``) or a directory
    to create or reuse (``directory=True``). Refused with a :class:`~quillrl.errors.ConfigError`
    (exit 2 from the CLI): a file path that is an existing directory; a directory path that is
    an existing file; a path under an existing file (its folder cannot be made); and a path that
    is one of ``inputs`` (the command would overwrite or append to what it reads). None passes
    through (the option was not given).

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> check_output_path(d, option="--out")
    Traceback (most recent call last):
    quillrl.errors.ConfigError: --out ...: is a directory; give a file path
    """
    if path is None:
        return None
    path = Path(path)
    if directory:
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{option} {path}: is a file, not a directory; give a directory path")
    elif path.is_dir():
        raise ConfigError(f"{option} {path}: is a directory; give a file path")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{option} {path}: {parent} is a file, so no folder can be "
                                  "made there")
            break
    for source in inputs:
        if source is not None and (_same_file(path, Path(source))
                                   or path.resolve() == Path(source).resolve()):
            raise ConfigError(f"{option} {path} is also an input of this command; writing it "
                              "would destroy what is read: give another path")
    return path


def at_least(option: str, value: int | float | None, low: int | float,
             high: int | float | None = None) -> None:
    """Refuse a count option outside ``[low, high]`` (None: the option was not given)."""
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{option} must be a finite number, got {value}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{option} must be {bound}, got {value}")


def check_choice(option: str, value: str | None, accepted: Iterable[str]) -> None:
    """Refuse an option value outside ``accepted`` (None: the option was not given)."""
    accepted = tuple(accepted)
    if value is not None and value not in accepted:
        raise ConfigError(f"{option} must be one of {', '.join(accepted)}; got {value!r}")


def report_skipped(path: Path | str, result: Any) -> None:
    """List a ``ReadResult``'s skipped lines on stderr (the first :data:`MAX_LISTED` one by one,
    then a count), so ``--skip-invalid`` means the same on every verb: count, name, continue."""
    list_skipped_lines(path, [(s.line, s.reason, s.field) for s in result.skipped])


def list_skipped_lines(path: Path | str, rows: Sequence[tuple[int, str, str | None]],
                       total: int | None = None) -> None:
    """Name skipped lines on stderr as ``file:line: skipped: reason (field '...')``: the first
    :data:`MAX_LISTED` of ``rows`` (line, reason, field), then how many more of ``total``."""
    for line, reason, field in rows[:MAX_LISTED]:
        where = f" (field '{field}')" if field else ""
        typer.echo(f"{path}:{line}: skipped: {reason}{where}", err=True)
    total = len(rows) if total is None else total
    if total > MAX_LISTED:
        typer.echo(f"... and {total - MAX_LISTED} more skipped lines", err=True)


def skipped_summary(result: Any) -> dict[str, Any]:
    """The summary fields every verb reading with ``--skip-invalid`` adds for one file."""
    return {"skipped": len(result.skipped), "skipped_by_reason": result.skipped_by_reason()}
