"""The life of a training run, from output directory to report, shared by the four ``quillrl
train`` verbs (each ``train/X_run.py`` calls :func:`run_training`; docs/design.md, "Layout").

Every run behaves alike: refuse to overwrite a finished or running output directory
without ``--resume``; with it, continue from the newest complete checkpoint; write the resolved
``config.yaml``, ``metrics.jsonl`` (through the trainer's callbacks), ``final/`` (the trained
model; a judge's loads by the spec in the summary), ``report.md`` with plots and ``summary.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from ..config import StageConfig, dump_config
from ..errors import ConfigError
from .common import last_checkpoint, write_summary


def load_trainable(name_or_path: str, lora: Any, *, task_type: str = "CAUSAL_LM"):
    """``(model, tokenizer, peft_config)`` for a trainer.

    A PEFT adapter directory (e.g. ``genrm-sft``'s ``final/`` as the start of ``genrm-grpo``)
    is loaded trainable and trained further as is, so ``peft_config`` is None then: TRL refuses
    a second adapter on a PEFT model, and stacking one would hide the first from the next stage.
    """
    from ..models import load

    model, tokenizer = load(name_or_path, trainable=True)
    if hasattr(model, "peft_config"):
        return model, tokenizer, None
    return model, tokenizer, lora.peft_config(task_type)


# Config fields that name a data file, and what each holds: every trainer's data is read and
# validated by check_data_files before any weights load (a bad line found after minutes of
# loading wastes them).
DATA_FIELDS = {"tasks": "tasks", "pairs": "pairs", "data": "sft examples"}


def data_files(config: StageConfig) -> dict[str, Path]:
    """The data files a config names, by field (``bundled:`` task sets resolved)."""
    from ..data import resolve_tasks_path

    found = {}
    for name in DATA_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, str) and value:
            found[name] = resolve_tasks_path(value) if name == "tasks" else Path(value)
    return found


def check_data_files(config: StageConfig) -> dict[str, Any]:
    """Read and validate every data file of ``config`` (a DataError names file, line, field);
    returns ``{field: {"records", "skipped", "skipped_by_reason"}}`` for the summary. With
    ``skip_invalid``, bad lines are counted and listed (file:line: reason) instead."""
    import logging

    from ..constraints import read_tasks
    from ..data import read_pairs, read_sft_examples
    from ..judges.template import REASONING_PREFILL

    skip = bool(getattr(config, "skip_invalid", False))
    log = logging.getLogger(__name__)
    out = {}
    for name, path in data_files(config).items():
        if name == "data":
            out[name] = {"records": len(read_sft_examples(path, REASONING_PREFILL)), "skipped": 0, "skipped_by_reason": {}}
            continue
        result = (read_tasks if name == "tasks" else read_pairs)(path, skip_invalid=skip)
        if not result.records:
            raise ConfigError(f"{name}: {path} holds no valid {DATA_FIELDS[name]}")
        for skipped in result.skipped:
            log.warning("%s:%s: skipped: %s", path, skipped.line, skipped.reason)
        out[name] = {"records": len(result), "skipped": len(result.skipped),
                     "skipped_by_reason": result.skipped_by_reason()}
    return out


def run_training(config: StageConfig, resume: bool, build: Callable[[Any, Path], tuple[Any, dict]], *,
                 title: str, summary_keys: tuple[str, ...], judge_spec: str | None = None,
                 save_final: Callable[[Any, Path], None] | None = None) -> dict:
    """Build with ``build(config, output_dir) -> (trainer, data_summary)``, train (resuming if
    asked), save ``final/`` (``trainer.save_model`` unless ``save_final`` is given), report.

    ``judge_spec`` is a format string with ``{final}``: how ``make_judge`` loads the result
    (None for a policy, which is no judge).
    """
    from .report import write_report

    output_dir = Path(config.output_dir)
    data_checked = check_data_files(config)  # before any weights load
    checkpoint = last_checkpoint(output_dir) if resume else None
    if resume and checkpoint is None:
        raise ConfigError(f"--resume: no checkpoint in {output_dir} (runs save every {config.save_steps} steps)")
    if checkpoint is not None and int(Path(checkpoint).name.split("-")[1]) >= config.max_steps:
        # transformers would still run one step past it: the stop is checked only after a step
        raise ConfigError(f"--resume: {checkpoint} is already at step "
                          f"{Path(checkpoint).name.split('-')[1]}, and max_steps is {config.max_steps}: "
                          "nothing is left to train. Raise --max-steps to continue it")
    if not resume and (output_dir / "metrics.jsonl").exists():
        raise ConfigError(f"{output_dir} already holds a run; pass --resume to continue it or choose "
                          "another --output-dir")
    output_dir.mkdir(parents=True, exist_ok=True)
    dump_config(config, output_dir / "config.yaml")
    start = time.perf_counter()
    trainer, data_summary = build(config, output_dir)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    final = output_dir / "final"
    (save_final or (lambda t, path: t.save_model(str(path))))(trainer, final)
    report = write_report(output_dir, title=title)
    rows = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines() if line]
    last = rows[-1] if rows else {}
    summary = {
        "output_dir": str(output_dir), "report": str(report), "final": str(final),
        **({"judge": judge_spec.format(final=final)} if judge_spec else {}), "steps": trainer.state.global_step,
        "resumed_from": checkpoint, "seconds": round(time.perf_counter() - start, 1),
        "train_loss": result.training_loss, "data": data_checked, **data_summary,
        **{k: last.get(k) for k in summary_keys},
    }
    write_summary(output_dir, summary)
    # under torchrun/accelerate: tear the process group down before exit, or gloo's threads can
    # abort the interpreter at shutdown (SIGABRT, "terminate called without an active exception")
    trainer.accelerator.end_training()
    return summary


def leave_if_distributed(code: int = 0) -> None:
    """End a torchrun/accelerate rank whose results are written, without interpreter
    finalization; a single process (``WORLD_SIZE`` unset or 1) returns and exits normally.

    Even after ``destroy_process_group`` (which :func:`run` calls), gloo's worker threads can
    still hold work objects whose tensors reference Python objects. Destroying them while the
    interpreter finalizes aborts the process (SIGABRT, "terminate called without an active
    exception"; pytorch/pytorch PR 179291 describes it), and torchrun then reports a finished
    run as failed. This was seen once under load in ``tests/test_train_distributed.py``, after
    both ranks had written their results. The rank flushes its streams and leaves with
    ``os._exit``.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
