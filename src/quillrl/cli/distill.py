"""``quillrl distill``: a teacher GenRM's consistent judgments as SFT data for a student GenRM."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from ._common import at_least, check_output_path, print_summary, user_errors


@app.command("distill")
@user_errors
def distill_cmd(
    pairs: Path = typer.Option(..., "--pairs", help="preference pairs JSONL (id, prompt, chosen, rejected)"),
    teacher: str = typer.Option(..., "--teacher", help="GenRM judge spec, e.g. genrm:local:smollm2-135m-instruct "
                                "or genrm:openai:http://host:port/v1#model"),
    out: Path = typer.Option(..., "--out", help="SFT examples JSONL (appended to; the ledger goes beside it)"),
    limit: Optional[int] = typer.Option(None, "--limit", help="judge only the first N pairs of the file"),
    batch_size: int = typer.Option(8, "--batch-size", help="pairs per teacher call (each pair is judged twice)"),
    max_new_tokens: int = typer.Option(512, "--max-new-tokens", help="teacher's reasoning length"),
    temperature: float = typer.Option(0.0, "--temperature", help="teacher's sampling temperature (0 = greedy)"),
    seed: int = typer.Option(0, "--seed", help="teacher's sampling seed"),
) -> None:
    """Judge each pair in both orders with a teacher GenRM; keep pairs whose two verdicts agree
    with each other and with the human label, as chat SFT examples. Rerun to resume."""
    from ..distill import distill, ledger_path

    at_least("--limit", limit, 1)
    check_output_path(out, inputs=[pairs])
    check_output_path(ledger_path(out), option="--out's ledger", inputs=[pairs])
    print_summary(distill(pairs, teacher, out, limit=limit, batch_size=batch_size,
                          max_new_tokens=max_new_tokens, temperature=temperature, seed=seed))
