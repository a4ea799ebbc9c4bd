"""``quillrl verify TASKS RESPONSES``: IFEval's four accuracies for a file of responses.

TASKS is a quillrl task file, or IFEval's or IFBench's raw file (``quillrl.constraints.read_tasks``
reads all three). Each response is joined to its task by ``id`` (or ``key``), else by the exact
prompt, else by the stripped prompt (as IFBench's ``evaluation_lib`` does). A task with no response stays in ``n`` and fails every constraint (a missing answer is
not a followed instruction; the reference figures in shared/data/README.md count it so); the
summary says how many there were, and how many responses matched no task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ._common import app
from ._common import (SKIP_INVALID_HELP, check_output_path, print_summary, report_skipped,
                      user_errors)

_LISTED = 10  # missing/unmatched items named on stderr before only counting them

# Shared with ``eval constraints|winrate|policy``: free_text constraints are judged alike everywhere.
FREE_TEXT_VERIFIER_OPTION = typer.Option(
    None, "--free-text-verifier", help="Backend that judges free_text constraints (e.g. "
    "local:smollm2-135m-instruct or openai:http://host:port/v1#model); without one they "
    "are undecided and fail (`eval` verbs refuse such tasks, as `train policy` does).")
FREE_TEXT_THRESHOLD_OPTION = typer.Option(
    0.5, "--free-text-threshold", help="p(yes) at or above which a free_text check passes.")


@app.command("verify")
@user_errors
def verify_command(
    tasks: Path = typer.Argument(..., help="Tasks: quillrl JSONL, or IFEval/IFBench raw JSONL."),
    responses: Path = typer.Argument(..., help="Responses JSONL: key/id and/or prompt, response."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write one JSONL line per task with "
                                       "every constraint's verdict and reason."),
    loose: bool = typer.Option(False, "--loose", help="Judge tasks (pass/fail in --out) by the "
                               "loose reading; the summary always has both."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help=SKIP_INVALID_HELP + " "
                                      "Applies to both files; a skipped task is left out of n."),
    free_text_verifier: Optional[str] = FREE_TEXT_VERIFIER_OPTION,
    free_text_threshold: float = FREE_TEXT_THRESHOLD_OPTION,
) -> None:
    """Check every response against its task's constraints; print IFEval's four metrics.

    --out is rewritten whole on every run (verifying is cheap; nothing to resume)."""
    from ..constraints import read_tasks
    from ..data import read_responses, resolve_tasks_path
    from ..eval.ifeval import join_responses, summarize, verify_task
    from ..judges.free_text import open_free_text_verifier

    check_output_path(out, inputs=[tasks, responses])
    task_file = read_tasks(resolve_tasks_path(str(tasks)), skip_invalid=skip_invalid)
    response_file = read_responses(responses, skip_invalid=skip_invalid)
    report_skipped(tasks, task_file)
    report_skipped(responses, response_file)
    joined, left = join_responses(task_file.records, response_file.records)
    with open_free_text_verifier(free_text_verifier, threshold=free_text_threshold) as verifier:
        rows = [verify_task(task, response, verifier) for task, response in joined]

    missing = [task.id for task, response in joined if response is None]
    _report_left(missing, left, rows)
    if out is not None:
        from ..data import write_jsonl

        write_jsonl(out, [_out_line(row, loose) for row in rows])
    summary = summarize(rows)
    summary.update(missing_responses=len(missing), unmatched_responses=len(left["unmatched"]),
                   duplicate_responses=len(left["duplicate"]), skipped_tasks=len(task_file.skipped),
                   skipped_responses=len(response_file.skipped),
                   skipped_by_reason={"tasks": task_file.skipped_by_reason(),
                                      "responses": response_file.skipped_by_reason()})
    print_summary(summary)


def _report_left(missing: list[str], left: dict[str, list], rows: list[dict[str, Any]]) -> None:
    """Name on stderr what the summary only counts: tasks without a response, responses that
    join no task or answer one twice, and undecided verdicts."""
    _report(f"{len(missing)} task(s) have no response (counted as failures)", missing)
    _report(f"{len(left['unmatched'])} response(s) match no task",
            left["unmatched"])
    _report(f"{len(left['duplicate'])} extra response(s) to already answered tasks (ignored)",
            left["duplicate"])
    undecided = [(row["id"], c) for row in rows for c in row["constraints"] if c["strict"] is None]
    _report(f"{len(undecided)} verdict(s) undecided, counted as failures (first: "
            f"{undecided[0][1]['reason']})" if undecided else "",
            [f"{task_id} {c['id']}" for task_id, c in undecided])


def _out_line(row: dict[str, Any], loose: bool) -> dict[str, Any]:
    return {**row, "passed": row["loose"] if loose else row["strict"]}


def _report(headline: str, labels: list[str]) -> None:
    if labels:
        listed = ", ".join(map(str, labels[:_LISTED])) + (", ..." if len(labels) > _LISTED else "")
        typer.echo(f"{headline}: {listed}", err=True)
