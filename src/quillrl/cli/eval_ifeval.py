"""``quillrl eval ifeval|ifbench --model SPEC``: generate greedily on the benchmark, then verify.

The run is ``quillrl generate`` (greedy, ``--max-new-tokens`` 1280 as lm-eval's ``ifeval``
task) followed by ``quillrl verify``; its last line has the same four metrics and ``n``. The
responses file (``--out``) is resumed by a rerun, so the 541 prompts can be spread over several
sessions. On the local backend the responses are those of lm-eval's own ``ifeval`` task with
``--apply_chat_template`` (docs/design.md, "Generation and IFEval"; bench/ifeval_parity.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from ..data.task_sources import IFBENCH_FILE, IFEVAL_FILE
from ._common import SKIP_INVALID_HELP, check_output_path, print_summary, user_errors
from .eval import eval_app
from .generate import (BACKEND_OPTION, BATCH_SIZE_OPTION, MODEL_HELP, check_sampling, read_task_file,
                       resumable)

GENERATION_KEYS = ("generated", "resumed", "tokens", "tokens_per_s", "clipped", "out")


def run_benchmark(name: str, relative: str, model: str, tasks: Optional[Path], limit: Optional[int],
                  max_new_tokens: int, batch_size: int, out: Optional[Path], verdicts: Optional[Path],
                  backend: str, skip_invalid: bool) -> dict:
    """Generate (resuming ``out``), verify, and return the summary of ``eval ifeval|ifbench``."""
    from ..data import write_jsonl
    from ..data.importers import resolve_data_root
    from ..data.readers import read_responses
    from ..eval.generate import generate_responses
    from ..eval.ifeval import join_responses, summarize, verify_task

    check_sampling(max_new_tokens=max_new_tokens, batch_size=batch_size, limit=limit)
    tasks = tasks or resolve_data_root() / relative
    out = out or Path("runs") / f"eval-{name}" / f"{_slug(model)}-{max_new_tokens}.jsonl"
    check_output_path(out, inputs=[tasks])
    check_output_path(verdicts, option="--verdicts", inputs=[tasks, out])
    task_list = read_task_file(tasks, skip_invalid)[:limit] if limit else read_task_file(tasks, skip_invalid)
    generation = generate_responses(model, task_list, out, max_new_tokens=max_new_tokens,
                                    batch_size=batch_size, backend=backend)
    joined, _ = join_responses(task_list, [r for r in read_responses(out).records if r.sample == 0])
    rows = [verify_task(task, response) for task, response in joined]
    if verdicts is not None:
        write_jsonl(verdicts, rows)
    summary = summarize(rows)
    summary.update({k: generation[k] for k in GENERATION_KEYS}, tasks=str(tasks))
    return summary


def _slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", spec.strip("/")).strip("_")[-80:] or "model"


def _register(name: str, relative: str, what: str) -> None:
    @eval_app.command(name, help=f"{what}: generate greedily, verify, print IFEval's four metrics.")
    @user_errors
    @resumable
    def command(
        model: str = typer.Option(..., "--model", help=MODEL_HELP),
        tasks: Optional[Path] = typer.Option(None, "--tasks", help=f"Tasks (default: the shared "
                                             f"data's {relative})."),
        limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N prompts in "
                                            "file order (as lm-eval's --limit)."),
        max_new_tokens: int = typer.Option(1280, "--max-new-tokens", help="As lm-eval's "
                                           "max_gen_toks for ifeval."),
        batch_size: int = BATCH_SIZE_OPTION,
        out: Optional[Path] = typer.Option(None, "--out", help="Responses JSONL, resumed by a "
                                           f"rerun (default runs/eval-{name}/<model>-<tokens>.jsonl)."),
        verdicts: Optional[Path] = typer.Option(None, "--verdicts", help="Write one line per task "
                                                "with every constraint's verdict and reason."),
        backend: str = BACKEND_OPTION,
        skip_invalid: bool = typer.Option(False, "--skip-invalid", help=SKIP_INVALID_HELP),
    ) -> None:
        print_summary(run_benchmark(name, relative, model, tasks, limit, max_new_tokens, batch_size,
                                    out, verdicts, backend, skip_invalid))


_register("ifeval", IFEVAL_FILE, "IFEval's 541 prompts")
_register("ifbench", IFBENCH_FILE, "IFBench's 300 prompts")
