"""What every CLI verb shares: the ``app`` it registers on, the JSON summary line, error
handling, the options several verbs take, and the report of skipped lines.

New verbs call :func:`check_output_path` on every file or directory they write (before any
work), :func:`at_least` on every count option, and :func:`report_skipped` for every file read
with ``--skip-invalid``, so every verb refuses and reports the same things the same way
(docs/design.md, "Reliability"). The first two are the library's, re-exported here.
"""

from __future__ import annotations

import errno
import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import typer

from ..config import at_least, check_choice  # noqa: F401  (re-exported for the verbs)
from ..cpu_threads import current_choice
from ..data.outputs import check_output_path  # noqa: F401
from ..errors import QuillError

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

# The vendor option of every verb that can start a vLLM engine (judge, eval alignment|winrate|
# policy|ifeval|ifbench, generate); each verb checks that it starts one (JudgeOptions.check_used,
# quillrl.eval.generate.engine_options).
VLLM_OPTION = typer.Option(None, "--vllm-option", help=(
    "vLLM engine option KEY=VALUE, repeatable, for every vLLM engine the verb starts (a "
    "genrm:vllm judge, --backend vllm): dtype, enforce_eager, max_model_len, "
    "gpu_memory_utilization, kv_cache_gb, enable_prefix_caching, max_num_seqs, "
    "tensor_parallel_size, max_logprobs, seed. The same keys go after '?' in a spec: "
    "genrm:vllm:MODEL?dtype=float32."))


def option_of(options_class: type, name: str, default: Any, *flags: str) -> Any:
    """A typer option whose help is field ``name``'s of a typed options class (the CLI and the
    library read one text); ``flags`` default to ``--name-with-dashes``."""
    return typer.Option(default, *(flags or ("--" + name.replace("_", "-"),)),
                        help=options_class.help(name))


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
