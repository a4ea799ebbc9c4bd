"""``quillrl data``: import the shared data sets, and check a task/pair/response file."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import app
from ._common import (MAX_LISTED, SKIP_INVALID_HELP, at_least, check_choice, check_output_path,
                      list_skipped_lines, print_summary, report_skipped, skipped_summary, user_errors)

data_app = typer.Typer(help="Import public data sets; check task, pair and response files.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("import")
@user_errors
def import_(
    name: str = typer.Argument(..., help="Data set: eqbench, ifbench, ifeval, lamp-p, storyer, "
                               "wq-style-mimic, wqrm, writingbench-length, writingbench-format, "
                               "writingbench-style (the WritingBench sets carry each query's rubric "
                               "as criteria)."),
    out: Path = typer.Option(..., "--out", help="JSONL file to write (replaced whole on every "
                             "run: importing is quick, so there is nothing to resume)."),
    split: str = typer.Option("all", help="train, test or all: a fixed 80/20 split by prompt."),
    seed: int = typer.Option(0, help="Seed of the split; the same seed gives the same split."),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="Shared data folder (default: $QUILLRL_DATA, else "
        "../shared/data from the current directory, else beside the repository)."),
) -> None:
    """Write a shared data set as quillrl tasks or pairs; the summary counts every skipped item."""
    from ..constraints import check_imported
    from ..data.importers import run_import

    check_output_path(out)
    summary = run_import(name, out, split=split, seed=seed, data_root=data_root,
                         check=check_imported)
    if summary["skipped"]:
        typer.echo(f"skipped {summary['skipped']} of {summary['read']} items: "
                   f"{summary['skipped_by_reason']}", err=True)
    print_summary(summary)


@data_app.command("check")
@user_errors
def check(
    path: Path = typer.Argument(..., help="JSONL file to check."),
    kind: str = typer.Option(..., help="tasks, pairs, responses or judgments."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help=SKIP_INVALID_HELP),
) -> None:
    """Validate a file: stops at the first bad line, or with --skip-invalid counts them all.

    A file with no valid record (empty, or every line skipped) is an error (exit 2)."""
    from ..constraints import read_tasks
    from ..data import read_judgments, read_pairs, read_responses
    from ..errors import DataError

    readers = {"tasks": read_tasks, "pairs": read_pairs, "responses": read_responses,
               "judgments": read_judgments}
    check_choice("--kind", kind, readers)
    result = readers[kind](path, skip_invalid=skip_invalid)
    report_skipped(path, result)
    summary = {"path": str(path), "kind": kind, "records": len(result), **skipped_summary(result)}
    if not result.records:
        print_summary({**summary, "ok": False})
        raise DataError(f"no valid {kind}" + (
            f": all {len(result.skipped)} lines were skipped" if result.skipped else
            " (the file is empty)"), path=str(path))
    print_summary({**summary, "ok": True})



@data_app.command("augment-constraints")
@user_errors
def augment_constraints(
    in_: Path = typer.Option(..., "--in", help="JSONL whose lines carry a 'prompt' (tasks, pairs, prompts)."),
    out: Path = typer.Option(..., "--out", help="Writing tasks JSONL to write (replaced if it exists)."),
    seed: int = typer.Option(0, help="Seed; each prompt's draw depends only on the seed and the prompt."),
    max_per_task: int = typer.Option(3, "--max-per-task", min=1,
                                     help="Add at most this many constraints to each task."),
    limit: int | None = typer.Option(None, help="Stop after this many tasks."),
    only: list[str] | None = typer.Option(None, "--only", help="Draw only these constraint ids (repeatable)."),
    family: list[str] | None = typer.Option(
        None, "--family", help="Draw from these families (repeatable): creative, ifeval, ifbench; "
                               "default creative and ifeval. --only overrides it."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Count and list bad lines "
                                      "(by reason, with line numbers) instead of stopping at one."),
) -> None:
    """Attach verifiable constraints (instructions appended to the prompt + their specs) to prompts.

    A line that is already a task keeps its constraints; the new ones never contradict them."""
    from ..constraints.templates import BY_ID, DEFAULT_FAMILIES, FAMILIES
    from ..constraints.constrained_tasks import augment_file
    from ..errors import ConfigError

    check_output_path(out, inputs=[in_])
    at_least("--limit", limit, 1)
    unknown = sorted(set(only or []) - set(BY_ID))
    if unknown:
        raise ConfigError(f"--only: no template for {unknown}; accepted: {', '.join(sorted(BY_ID))}")
    bad = sorted(set(family or []) - set(FAMILIES))
    if bad:
        raise ConfigError(f"--family: unknown {bad}; choose from {', '.join(FAMILIES)}")
    summary = augment_file(in_, out, seed=seed, max_per_task=max_per_task, limit=limit,
                           allowed=tuple(only) if only else None,
                           families=tuple(family) if family else DEFAULT_FAMILIES,
                           skip_invalid=skip_invalid)
    list_skipped_lines(in_, [(s["line"], s["reason"], s["field"]) for s in summary["skipped_lines"]],
                       summary["skipped"])
    for dup in summary["duplicate_lines"][:MAX_LISTED]:
        typer.echo(f"{in_}:{dup['line']}: duplicate prompt (first on line {dup['first_line']}); "
                   "not written again", err=True)
    print_summary(summary)
