"""``quillrl judge``: judge every preference pair in a file, one JSONL line per pair.

Each line holds the judge's answer in slot terms (``p_a``, ``verdict``, each order's raw
output) and in human-label terms (``chosen_slot``, ``p_chosen``, ``label_correct``); the
seeded A/B presentation order is in ``quillrl.eval.judging``.

The run is resumable: ``--out`` is opened in append mode and pairs whose id is already there are
skipped, so rerunning the same command after a crash or Ctrl-C finishes the job. Every line is
flushed when written, so an interrupted file is valid up to its last complete line (a line cut
mid-write is dropped on resume). A resume with a different judge, mode, swap or order seed is
refused: one file must not mix two judges' answers. ``--restart`` starts the file afresh.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional, Sequence

import typer

from ..backends.vllm_options import parse_cli_pairs, with_vllm_options
from ._common import app
from ._common import (SKIP_INVALID_HELP, at_least, check_choice, check_output_path, print_summary,
                      report_skipped, user_errors)

MODES_HELP = "reasoning (analysis, then verdict) or verdict (verdict-only: one forward pass)."
DEVICE_HELP = "Local GenRM: cpu, cuda, cuda:1... (default: cuda if available)."
DTYPE_HELP = ("Local GenRM: float32, bfloat16 or float16 (default: bfloat16 on a GPU that has "
              "it, else float32).")
BACKEND_BATCH_HELP = "Local GenRM: prompts per forward batch (default: the backend's, 8)."


def build_judge(spec: str, *, mode: str, swap: bool, max_new_tokens: int | None = None,
                device: str | None = None, dtype: str | None = None,
                backend_batch_size: int | None = None, timeout: float | None = None,
                attempts: int | None = None, force_verdict: bool = False,
                vllm_options: dict[str, Any] | None = None) -> Any:
    """``make_judge`` with the CLI's options; GenRM-only settings go only to GenRM judges
    (the other judges have one way of judging and would reject them), ``vllm_options``
    (parsed ``--vllm-option``) only to ``genrm:vllm`` judges, and backend settings left unset
    are not passed, so each backend keeps its own defaults."""
    from ..judges import make_judge

    if not spec.startswith("genrm:"):
        return make_judge(spec)
    options = {} if max_new_tokens is None else {"max_new_tokens": max_new_tokens}
    if force_verdict:
        options["force_verdict"] = True
    backend = {k: v for k, v in (("device", device), ("dtype", dtype),
                                 ("batch_size", backend_batch_size), ("timeout", timeout),
                                 ("max_retries", None if attempts is None else attempts - 1))
               if v is not None}
    if spec.startswith("genrm:vllm"):
        backend.update(vllm_options or {})
    return make_judge(spec, mode=mode, swap=swap, backend_options=backend, **options)


DTYPES = ("float32", "bfloat16", "float16")
TIMEOUT_HELP = ("OpenAI-compatible GenRM: seconds to wait for one request (default 40); with "
                "--attempts 3, a server that never answers fails in about 2 minutes.")
ATTEMPTS_HELP = "OpenAI-compatible GenRM: tries per request, the first included (default 3)."


def judge_options(mode: str, swap: bool, max_new_tokens: int | None, device: str | None,
                  dtype: str | None, backend_batch_size: int | None, *,
                  specs: Sequence[str] | None = None, timeout: float | None = None,
                  attempts: int | None = None, force_verdict: bool = False,
                  vllm_option: Sequence[str] | None = None) -> dict[str, Any]:
    """The keyword arguments of :func:`build_judge` (the CLI options shared by judge and eval),
    each checked: a value no judge accepts, or (given ``specs``) an option that none of the
    judges would use, is refused instead of ignored."""
    import re

    from ..errors import ConfigError
    from ..judges.template import MODES

    check_choice("--mode", mode, MODES)
    check_choice("--dtype", dtype, DTYPES)
    if device is not None and not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device):
        raise ConfigError(f"--device must be cpu, cuda, cuda:N or mps; got {device!r}")
    at_least("--backend-batch-size", backend_batch_size, 1)
    at_least("--max-new-tokens", max_new_tokens, 1)
    at_least("--attempts", attempts, 1, 100)
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout}")
    vllm_options = parse_cli_pairs(vllm_option or ())
    if force_verdict and mode != "reasoning":
        raise ConfigError("--force-verdict closes an unfinished analysis, so it needs --mode "
                          f"reasoning (verdict-only mode writes no analysis), got --mode {mode}")
    if specs is not None:
        genrm = [s for s in specs if s.startswith("genrm:")]
        for option, value, needs in (
                ("--swap", swap or None, genrm), ("--max-new-tokens", max_new_tokens, genrm),
                ("--force-verdict", force_verdict or None, genrm),
                # vLLM places and batches the model itself: --device and --backend-batch-size
                # are the local backend's (vllm.LLM would refuse them as unknown arguments)
                ("--device", device, [s for s in genrm if s.startswith("genrm:local")]),
                ("--dtype", dtype, [s for s in genrm if not _remote(s)]),
                ("--backend-batch-size", backend_batch_size, [s for s in genrm if s.startswith("genrm:local")]),
                ("--timeout", timeout, [s for s in genrm if _remote(s)]),
                ("--attempts", attempts, [s for s in genrm if _remote(s)]),
                ("--vllm-option", vllm_options or None, [s for s in genrm if s.startswith("genrm:vllm")])):
            if value is not None and not needs:
                which = ("OpenAI-compatible GenRM judges (genrm:openai:...)"
                         if option in ("--timeout", "--attempts") else
                         "GenRM judges (genrm:...)"
                         if option in ("--swap", "--max-new-tokens", "--force-verdict")
                         else "vLLM GenRM judges (genrm:vllm:...)" if option == "--vllm-option"
                         else "in-process GenRM judges (genrm:local:..., genrm:vllm:...)"
                         if option == "--dtype" else "local GenRM judges (genrm:local:...)")
                raise ConfigError(f"{option} applies only to {which}, and none is given "
                                  f"({', '.join(specs) or 'no --judge'})")
    return dict(mode=mode, swap=swap, max_new_tokens=max_new_tokens, device=device,
                dtype=dtype, backend_batch_size=backend_batch_size, timeout=timeout,
                attempts=attempts, force_verdict=force_verdict, vllm_options=vllm_options)


def vllm_judge_spec(judge: str, vllm_option: Sequence[str] | None) -> str:
    """``judge`` with the parsed ``--vllm-option`` values written into its spec (see
    :func:`~quillrl.backends.vllm_options.with_vllm_options`); refused for a judge that is not
    ``genrm:vllm``."""
    from ..errors import ConfigError

    options = parse_cli_pairs(vllm_option or ())
    if options and not judge.startswith("genrm:vllm"):
        raise ConfigError(f"--vllm-option applies only to vLLM GenRM judges (genrm:vllm:...), "
                          f"got --judge {judge}")
    return with_vllm_options(judge, options)


def _remote(spec: str) -> bool:
    return spec.startswith("genrm:openai:")


def spec_settings(spec: str, mode: str, swap: bool, force_verdict: bool = False) -> dict[str, Any]:
    """What a judge built by :func:`build_judge` records as its settings
    (``quillrl.eval.judging.judge_settings``): mode, swap and forcing only apply to GenRM judges."""
    from ..judges.template import TEMPLATE_VERSION

    genrm = spec.startswith("genrm:")
    return {"judge": spec, "mode": mode if genrm else None, "swap": bool(swap) and genrm,
            "template": TEMPLATE_VERSION if genrm else None,
            "force_verdict": bool(force_verdict) and genrm}


def select_pairs(path: Path, limit: int | None, sample: int | None = None,
                 seed: int = 0, skip_invalid: bool = False) -> list:
    """The first ``limit`` pairs of the file, or a seeded random ``sample`` of them (in file
    order), or all of them; with ``skip_invalid`` bad lines are listed on stderr and left out."""
    from ..data import read_pairs
    from ..errors import ConfigError
    from ..eval.judging import sample_pairs

    for name, value in (("--limit", limit), ("--sample", sample)):
        at_least(name, value, 1)
    if limit is not None and sample is not None:
        raise ConfigError("give --limit (the first N pairs) or --sample (N pairs drawn with "
                          "--seed), not both")
    result = read_pairs(path, skip_invalid=skip_invalid)
    report_skipped(path, result)
    records = result.records
    if not records:
        raise ConfigError(f"{path} holds no pairs" + (
            f" ({len(result.skipped)} bad lines skipped)" if result.skipped else ""))
    if sample is not None:
        return sample_pairs(records, sample, seed)
    return records[:limit] if limit is not None else records


LIMIT_HELP = "Only the first N pairs."
SAMPLE_HELP = ("Only N pairs drawn at random with --seed (kept in file order): a fairer subset "
               "than the first N of a file grouped by prompt.")

# The judge options `judge`, `eval alignment` and `eval winrate` share, declared once.
MODE_OPTION = typer.Option("reasoning", "--mode", help=MODES_HELP)
DEVICE_OPTION = typer.Option(None, "--device", help=DEVICE_HELP)
DTYPE_OPTION = typer.Option(None, "--dtype", help=DTYPE_HELP)
BACKEND_BATCH_OPTION = typer.Option(None, "--backend-batch-size", help=BACKEND_BATCH_HELP)
PAIR_BATCH_OPTION = typer.Option(16, "--batch-size", help="Pairs per compare_many call.")
GENRM_MAX_NEW_TOKENS_OPTION = typer.Option(
    None, "--max-new-tokens", help="GenRM reasoning length limit (default: the judge's, 512).")
FORCE_VERDICT_HELP = ("Reasoning mode: close an analysis that never reached its verdict (token "
                      "limit, or prose after </analysis>) and read p(A) there; such judgments "
                      "are valid, marked forced and counted apart.")
FORCE_VERDICT_OPTION = typer.Option(False, "--force-verdict", help=FORCE_VERDICT_HELP)
TIMEOUT_OPTION = typer.Option(None, "--timeout", help=TIMEOUT_HELP)
ATTEMPTS_OPTION = typer.Option(None, "--attempts", help=ATTEMPTS_HELP)
VLLM_OPTION_HELP = ("vLLM engine option KEY=VALUE, repeatable (genrm:vllm judges, --backend vllm): "
                    "dtype, enforce_eager, max_model_len, gpu_memory_utilization, kv_cache_gb, "
                    "enable_prefix_caching, max_num_seqs, tensor_parallel_size, max_logprobs, seed. "
                    "The same keys go after '?' in a spec: genrm:vllm:MODEL?dtype=float32.")
VLLM_OPTION = typer.Option(None, "--vllm-option", help=VLLM_OPTION_HELP)
LIMIT_OPTION = typer.Option(None, "--limit", help=LIMIT_HELP)
SAMPLE_OPTION = typer.Option(None, "--sample", help=SAMPLE_HELP)


@app.command("judge")
@user_errors
def judge_command(
    pairs: Path = typer.Option(..., "--pairs", help="Preference pairs JSONL "
                               "({id, prompt, chosen, rejected}; chosen is the human's pick)."),
    judge: str = typer.Option(..., "--judge", help="Judge spec: genrm:<backend>, scalar:<path>, "
                              "baseline:length, baseline:random[:seed]."),
    out: Path = typer.Option(..., "--out", help="JSONL to append to; ids already there are "
                             "skipped (resume)."),
    mode: str = MODE_OPTION,
    swap: bool = typer.Option(False, "--swap", help="Judge both orders and debias (GenRM)."),
    limit: Optional[int] = LIMIT_OPTION,
    sample: Optional[int] = SAMPLE_OPTION,
    seed: int = typer.Option(0, "--seed", help="Seed of each pair's A/B presentation order "
                             "(and of --sample)."),
    batch_size: int = PAIR_BATCH_OPTION,
    max_new_tokens: Optional[int] = GENRM_MAX_NEW_TOKENS_OPTION,
    force_verdict: bool = FORCE_VERDICT_OPTION,
    device: Optional[str] = DEVICE_OPTION,
    dtype: Optional[str] = DTYPE_OPTION,
    backend_batch_size: Optional[int] = BACKEND_BATCH_OPTION,
    restart: bool = typer.Option(False, "--restart", help="Replace --out instead of resuming."),
    timeout: Optional[float] = TIMEOUT_OPTION,
    attempts: Optional[int] = ATTEMPTS_OPTION,
    vllm_option: Optional[list[str]] = VLLM_OPTION,
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help=SKIP_INVALID_HELP),
) -> None:
    """Judge preference pairs, one JSONL line each; rerun to resume.

    Chosen and rejected are shown as A/B in a seeded random order per pair. The JSON summary
    gives accuracy against the human label, the invalid count and the cost."""
    from ..eval.judging import judge_into, open_judgments, resume_pairs, run_summary

    at_least("--batch-size", batch_size, 1)
    check_output_path(out, inputs=[pairs])
    options = judge_options(mode, swap, max_new_tokens, device, dtype, backend_batch_size,
                            specs=[judge], timeout=timeout, attempts=attempts,
                            force_verdict=force_verdict, vllm_option=vllm_option)
    # --vllm-option goes into the spec, which names the judge in every line (and on resume)
    judge = with_vllm_options(judge, options["vllm_options"])
    selected = select_pairs(pairs, limit, sample, seed, skip_invalid=skip_invalid)
    settings = {**spec_settings(judge, mode, swap, force_verdict), "order_seed": seed}
    # The file is checked (settings, texts, a line cut off mid-write) before the judge is
    # built: a refused resume should not first load a model.
    with open_judgments(out, settings, restart=restart) as writer:
        records, todo = resume_pairs(writer, selected)
        start = time.perf_counter()
        interrupted = False
        if todo:  # nothing left to judge (a finished resume): report without loading a model
            with build_judge(judge, **options) as model:
                interrupted = judge_into(writer, records, todo, model, spec=judge, seed=seed,
                                         batch_size=batch_size)
        wall = time.perf_counter() - start
    ordered = [records[p.id] for p in selected if p.id in records]
    print_summary(run_summary(ordered, pairs=len(selected), written=writer.written,
                              skipped_done=len(selected) - len(todo), interrupted=interrupted,
                              wall_seconds=round(wall, 3), out=str(out), **settings))
    if interrupted:
        raise typer.Exit(code=130)
