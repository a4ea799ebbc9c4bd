"""Trainer callbacks shared by every quillrl trainer: metrics.jsonl, progress bar, samples table,
and the re-check of torch's CPU threads on a shared machine.

``metrics.jsonl`` gets one JSON object per optimizer step (TRL's logs renamed to quillrl's
metric names, plus whatever the trainer adds). It is resume-safe: when a run restarts from a
checkpoint at step s, lines after s (written after that checkpoint, about to be redone) are
dropped and lines up to s are kept byte for byte, so a killed run loses no metric it had saved.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable

from transformers import TrainerCallback

from ..cpu_threads import Recheck


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None  # JSON has no NaN; a missing value is None
    return value


def truncate_after(path: Path, step: int) -> int:
    """Keep the lines of ``path`` whose ``step`` is at most ``step``; return how many were dropped."""
    if not path.exists():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            row_step = json.loads(line).get("step", 0)
        except json.JSONDecodeError:  # a line cut by the kill: drop it, it is redone
            dropped += 1
            continue
        if row_step <= step:
            kept.append(line)
        else:
            dropped += 1
    path.write_text("".join(k + "\n" for k in kept))
    return dropped


class MetricsWriter(TrainerCallback):
    """Append one line per logged step to ``metrics.jsonl``.

    ``rename`` maps TRL's log keys to quillrl's names (both are kept); ``extra`` returns the
    trainer's own per-step values (read once per log, then reset by the trainer); ``always``
    names keys every line carries, null when the trainer did not log them (e.g. ``kl``, which
    TRL computes only when it has a reference model, i.e. ``beta > 0``).
    """

    def __init__(self, path: str | Path, rename: dict[str, str] | None = None,
                 extra: Callable[[], dict] | None = None, always: tuple[str, ...] = ()):
        self.path = Path(path)
        self.rename = rename or {}
        self.extra = extra
        self.always = always
        self._t0 = time.perf_counter()

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # state.global_step is the resumed checkpoint's step here (0 on a fresh run).
            truncate_after(self.path, state.global_step)
        self._t0 = time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        self._t0 = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "train_runtime" in logs:
            return
        row: dict[str, Any] = {"step": state.global_step}
        for key, value in logs.items():
            row[self.rename.get(key, key)] = value
        if self.extra is not None:
            row.update(self.extra())
        for key in self.always:
            row.setdefault(key, None)
        row.setdefault("seconds", round(time.perf_counter() - self._t0, 3))
        with self.path.open("a") as f:
            f.write(json.dumps({k: _clean(v) for k, v in row.items()}) + "\n")


class CpuThreads(TrainerCallback):
    """Before each step, re-check the other work on our cores (every 30 s at most) and move
    torch's thread count with it (docs/design.md, "A busy machine"). The trainer's loop runs in
    the main thread, the one whose OpenMP count matters."""

    def __init__(self, every_s: float = 30.0):
        self.recheck = Recheck(every_s)

    def on_step_begin(self, args, state, control, **kwargs):
        self.recheck.step()


class RichProgress(TrainerCallback):
    """A progress bar over optimizer steps showing the step's key metrics (replaces tqdm's)."""

    def __init__(self, show: dict[str, str]):
        self.show = show  # log key -> short label
        self._progress = None
        self._task = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                                  TimeRemainingColumn(), TextColumn("{task.fields[stats]}"), transient=False)
        self._progress.start()
        self._task = self._progress.add_task("train", total=state.max_steps, completed=state.global_step,
                                             stats="")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._progress is None or not logs:
            return
        parts = [f"{label} {logs[key]:.3f}" for key, label in self.show.items()
                 if isinstance(logs.get(key), (int, float))]
        self._progress.update(self._task, completed=state.global_step, stats="  ".join(parts))

    def on_step_end(self, args, state, control, **kwargs):
        if self._progress is not None:
            self._progress.update(self._task, completed=state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class SamplesTable(TrainerCallback):
    """Append sampled completions with their rewards to ``completions.jsonl`` (resume-safe)."""

    def __init__(self, path: str | Path, take: Callable[[], list[dict]]):
        self.path = Path(path)
        self.take = take

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            truncate_after(self.path, state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        rows = self.take()
        if not state.is_world_process_zero or not rows:
            return
        with self.path.open("a") as f:
            for row in rows:
                f.write(json.dumps({"step": state.global_step, **row}, ensure_ascii=False) + "\n")
