"""``quillrl distill``: a teacher GenRM's consistent judgments as SFT data for a student GenRM."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import app
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
    force_verdict: bool = typer.Option(False, "--force-verdict", help="close a teacher's analysis "
                                       "that never reached its verdict and read the verdict there "
                                       "(counted as forced)"),
    cache: Optional[Path] = typer.Option(None, "--cache", help="response cache JSONL (default: "
                                         "<out>.cache.jsonl); share it between runs of one teacher"),
    max_rps: Optional[float] = typer.Option(None, "--max-rps", help="at most this many teacher prompts per second"),
    max_concurrency: Optional[int] = typer.Option(None, "--max-concurrency",
                                                  help="openai teachers: requests in flight at once"),
    max_prompt_tokens: Optional[int] = typer.Option(None, "--max-prompt-tokens", help="teacher context in "
                                                    "tokens (default: the local/vllm model's); longer pairs are skipped"),
    usd_prompt: float = typer.Option(0.0, "--usd-per-mtok-prompt", help="price per million prompt tokens"),
    usd_completion: float = typer.Option(0.0, "--usd-per-mtok-completion",
                                         help="price per million completion tokens"),
) -> None:
    """Judge each pair in both orders with a teacher GenRM; keep pairs whose two verdicts agree
    with each other and with the human label, as chat SFT examples. Rerun to resume: a response
    cache means no teacher call is paid twice."""
    from ..distill import Prices, distill, ledger_path

    at_least("--limit", limit, 1)
    check_output_path(out, inputs=[pairs])
    check_output_path(ledger_path(out), option="--out's ledger", inputs=[pairs])
    if cache is not None:
        check_output_path(cache, option="--cache", inputs=[pairs, out])
    at_least("--max-concurrency", max_concurrency, 1)
    at_least("--max-prompt-tokens", max_prompt_tokens, 1)
    print_summary(distill(pairs, teacher, out, limit=limit, batch_size=batch_size,
                          max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                          cache=cache, max_rps=max_rps, max_concurrency=max_concurrency,
                          max_prompt_tokens=max_prompt_tokens, force_verdict=force_verdict,
                          prices=Prices(prompt=usd_prompt, completion=usd_completion)))
