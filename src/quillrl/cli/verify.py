"""``quillrl verify TASKS RESPONSES``: IFEval's four accuracies for a file of responses.

TASKS is a quillrl task file, or IFEval's or IFBench's raw file (``quillrl.data.read_tasks``
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
    free_text_verifier: Optional[str] = typer.Option(
        None, "--free-text-verifier", help="Backend that judges free_text constraints (e.g. "
        "local:smollm2-135m-instruct or openai:http://host:port/v1#model); without one they "
        "are undecided and fail."),
    free_text_threshold: float = typer.Option(
        0.5, "--free-text-threshold", help="p(yes) at or above which a free_text check passes."),
) -> None:
    """Check every response against its task's constraints; print IFEval's four metrics.

    --out is rewritten whole on every run (verifying is cheap; nothing to resume)."""
    from ..data import read_responses, read_tasks

    check_output_path(out, inputs=[tasks, responses])
    task_file = read_tasks(tasks, skip_invalid=skip_invalid)
    response_file = read_responses(responses, skip_invalid=skip_invalid)
    report_skipped(tasks, task_file)
    report_skipped(responses, response_file)
    verifier = None
    if free_text_verifier is not None:
        from ..judges.free_text import make_free_text_verifier

        verifier = make_free_text_verifier(free_text_verifier, threshold=free_text_threshold)
    joined, left = join_responses(task_file.records, response_file.records)
    try:
        rows = [verify_task(task, response, verifier) for task, response in joined]
    finally:
        if verifier is not None:
            verifier.close()

    missing = [task.id for task, response in joined if response is None]
    _report(f"{len(missing)} task(s) have no response (counted as failures)", missing)
    _report(f"{len(left['unmatched'])} response(s) match no task",
            [_label(r) for r in left["unmatched"]])
    _report(f"{len(left['duplicate'])} extra response(s) to already answered tasks (ignored)",
            [_label(r) for r in left["duplicate"]])
    undecided = [(row["id"], c) for row in rows for c in row["constraints"] if c["strict"] is None]
    _report(f"{len(undecided)} verdict(s) undecided, counted as failures (first: "
            f"{undecided[0][1]['reason']})" if undecided else "",
            [f"{task_id} {c['id']}" for task_id, c in undecided])
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


def join_responses(tasks: list, responses: list) -> tuple[list[tuple[Any, Any]], dict[str, list]]:
    """Pair each task with its first response: by id, else by exact prompt, else stripped.

    Returns ``[(task, response or None)]`` in task order, and the responses left over:
    ``"unmatched"`` (no task has their id or prompt) and ``"duplicate"`` (a second response to a
    task that already has one; only the first is judged).
    """
    task_ids = {task.id for task in tasks}
    by_id: dict[str, list] = {}
    by_prompt: dict[str, list] = {}
    for response in responses:
        if response.id is not None and response.id in task_ids:
            by_id.setdefault(response.id, []).append(response)
        elif response.prompt is not None:
            # An id we do not know (another file's numbering) still joins by its prompt, as
            # IFEval's and IFBench's evaluations join: a response is found under its prompt and
            # its stripped prompt, and a task looks up its prompt, then its stripped prompt.
            for key in dict.fromkeys((response.prompt, response.prompt.strip())):
                by_prompt.setdefault(key, []).append(response)
    joined, used = [], set()
    for task in tasks:
        candidates = (by_id.get(task.id) or by_prompt.get(task.prompt)
                      or by_prompt.get(task.prompt.strip()) or [])
        joined.append((task, candidates[0] if candidates else None))
        used.update(id(r) for r in candidates)
    judged = {id(response) for _, response in joined if response is not None}
    left = {"unmatched": [r for r in responses if id(r) not in used],
            "duplicate": [r for r in responses if id(r) in used and id(r) not in judged]}
    return joined, left


def verify_task(task, response, free_text_verifier: Any = None) -> dict[str, Any]:
    """Strict and loose verdicts for one task (a missing response fails every constraint)."""
    from ..constraints import verify

    if response is None:
        failed = [{"id": c.id, "kwargs": c.kwargs, "strict": False, "loose": False,
                   "reason": "no response"} for c in task.constraints]
        return {"id": task.id, "has_response": False, "strict": False, "loose": False,
                "constraints": failed}
    strict = verify(response.response, task.constraints, prompt=task.prompt,
                    free_text_verifier=free_text_verifier)
    loose = verify(response.response, task.constraints, loose=True, prompt=task.prompt,
                   free_text_verifier=free_text_verifier)
    verdicts = [{"id": c.id, "kwargs": c.kwargs, "strict": s.passed, "loose": l.passed,
                 "reason": s.reason, "loose_reason": l.reason}
                for c, s, l in zip(task.constraints, strict.results, loose.results)]
    return {"id": task.id, "has_response": True, "strict": strict.passed, "loose": loose.passed,
            "constraints": verdicts}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """IFEval's four accuracies, as fractions, with the count of undecided verdicts."""
    n = len(rows)
    verdicts = [c for row in rows for c in row["constraints"]]
    n_inst = len(verdicts)

    def share(hits: int, total: int) -> float | None:
        return hits / total if total else None

    return {
        "n": n,
        "prompt_level_strict_acc": share(sum(row["strict"] for row in rows), n),
        "inst_level_strict_acc": share(sum(c["strict"] is True for c in verdicts), n_inst),
        "prompt_level_loose_acc": share(sum(row["loose"] for row in rows), n),
        "inst_level_loose_acc": share(sum(c["loose"] is True for c in verdicts), n_inst),
        "n_instructions": n_inst,
        "undecided_strict": sum(c["strict"] is None for c in verdicts),
        "undecided_loose": sum(c["loose"] is None for c in verdicts),
    }


def _out_line(row: dict[str, Any], loose: bool) -> dict[str, Any]:
    return {**row, "passed": row["loose"] if loose else row["strict"]}


def _report(headline: str, labels: list[str]) -> None:
    if labels:
        listed = ", ".join(map(str, labels[:_LISTED])) + (", ..." if len(labels) > _LISTED else "")
        typer.echo(f"{headline}: {listed}", err=True)


def _label(response) -> str:
    if response.id is not None:
        return response.id
    flat = " ".join(response.prompt.split())
    return repr(flat if len(flat) <= 60 else flat[:59] + "…")
