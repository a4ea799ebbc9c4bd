"""``quillrl eval ifeval|ifbench --model SPEC``: generate greedily on the benchmark, then verify.

The run is ``quillrl generate`` (greedy, ``--max-new-tokens`` 1280 as lm-eval's ``ifeval``
task) followed by ``quillrl verify``; its last line has the same four metrics and ``n``. The
responses file (``--out``) is resumed by a rerun, so the 541 prompts can be spread over several
sessions. On the local backend the responses are those of lm-eval's own ``ifeval`` task with
``--apply_chat_template`` (docs/design.md, "Generation and IFEval"; bench/ifeval_parity.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..data.task_sources import IFBENCH_FILE, IFEVAL_FILE
from ._common import SKIP_INVALID_HELP, VLLM_OPTION, check_output_path, print_summary, user_errors
from .eval import eval_app
from .generate import (BACKEND_OPTION, BATCH_SIZE_OPTION, MODEL_HELP, check_sampling,
                       read_task_file, resumable, vllm_backend_options)

def run_benchmark(options, skip_invalid: bool = False) -> dict:
    """Check ``options`` (a :class:`~quillrl.eval.ifeval.BenchmarkOptions`), read its tasks and
    run it (``quillrl.eval.ifeval.run_benchmark``)."""
    from ..eval.ifeval import run_benchmark as run

    check_sampling(max_new_tokens=options.max_new_tokens, batch_size=options.batch_size,
                   limit=options.limit)
    options = options.resolved()
    check_output_path(options.out, inputs=[options.tasks])
    check_output_path(options.verdicts, option="--verdicts", inputs=[options.tasks, options.out])
    return run(options, read_task_file(options.tasks, skip_invalid))


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
        vllm_option: Optional[list[str]] = VLLM_OPTION,
        skip_invalid: bool = typer.Option(False, "--skip-invalid", help=SKIP_INVALID_HELP),
    ) -> None:
        from ..data.importers import resolve_data_root
        from ..eval.ifeval import BenchmarkOptions

        options = BenchmarkOptions(name, model, tasks or resolve_data_root() / relative, out,
                                   limit, max_new_tokens, batch_size, verdicts, backend,
                                   vllm_backend_options(vllm_option, backend))
        print_summary(run_benchmark(options, skip_invalid))


_register("ifeval", IFEVAL_FILE, "IFEval's 541 prompts")
_register("ifbench", IFBENCH_FILE, "IFBench's 300 prompts")
