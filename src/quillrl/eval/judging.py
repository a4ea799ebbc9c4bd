"""Run a judge over labelled preference pairs: one JSON-ready record per pair.

Shared by ``quillrl judge`` (which writes the records) and ``quillrl eval alignment`` (which
scores them), so both present pairs the same way.

Presentation order. A pair file puts the human-preferred text in ``chosen``; showing it always
as candidate A would let a judge that favours slot A score 100% without reading a word. Each
pair's ``chosen`` goes to slot A or B by the package's one seeded placement coin, a function of
``(seed, pair id)`` only (:func:`quillrl.judges.placement.first_slot`), so a pair is shown the
same way whether it is judged alone, in a batch, after ``--limit``, or in a resumed run. The record keeps the slot, and ``p_chosen`` /
``label_correct`` translate the judge's slot answer back to the human label.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..data.resumable import input_digests
from ..judges.base import Judge, Judgment
from ..judges.options import JudgeOptions, judge_settings
from ..judges.placement import first_slot
from .alignment import p_chosen_of

DEFAULT_BATCH_SIZE = 16


def sample_pairs(pairs: Sequence[Any], n: int, seed: int = 0) -> list:
    """A seeded random subset of ``n`` pairs, kept in file order (all of them if ``n`` is not
    smaller). Pair files are often grouped by prompt (StoryER's test split puts 2 prompts in
    its first 60 pairs), so the first N pairs are a poor sample; this one is drawn by position,
    so the same file, n and seed give the same pairs.

    >>> sample_pairs(list("abcdefgh"), 3, seed=0)
    ['d', 'g', 'h']
    """
    if n >= len(pairs):
        return list(pairs)
    keep = sorted(random.Random(seed).sample(range(len(pairs)), n))
    return [pairs[i] for i in keep]


def presented(pair: Any, seed: int = 0) -> tuple[tuple[str, str, str, str | None], str]:
    """``((prompt, text in A, text in B, principle), chosen_slot)`` for a pair record; the
    principle is the pair's rendered principle and criteria (None without)."""
    slot = first_slot(pair.id, seed)
    a, b = (pair.chosen, pair.rejected) if slot == "A" else (pair.rejected, pair.chosen)
    principle = pair.judge_principle() if hasattr(pair, "judge_principle") else None
    return (pair.prompt, a, b, principle), slot


def judgment_record(pair: Any, judgment: Judgment, slot: str, *, judge: str, mode: str | None,
                    swap: bool, seed: int, template: str | None = None,
                    force_verdict: bool = False) -> dict[str, Any]:
    """The JSONL line for one judged pair: identity, the judge's answer in slot terms and in
    human-label terms, each order's raw output, and the cost."""
    p_chosen = p_chosen_of(judgment.p_a, slot)
    label_correct = None if judgment.verdict is None else judgment.verdict == slot
    orders = [{"order": o.order, "p_a": o.p_a, "verdict": o.verdict, "valid": o.valid,
               "error": o.error, "raw": o.raw, "mass": o.mass, "forced": o.forced}
              for o in judgment.orders]
    cost = judgment.cost
    return {
        "id": pair.id, "judge": judge, "mode": mode, "swap": swap, "template": template, "order_seed": seed,
        "force_verdict": force_verdict, "forced": judgment.forced,
        "chosen_slot": slot, "p_a": judgment.p_a, "p_chosen": p_chosen,
        "verdict": judgment.verdict, "label_correct": label_correct,
        "entropy": judgment.entropy, "valid": judgment.valid, "error": judgment.error,
        "flipped": judgment.flipped, "raw": judgment.raw, "orders": orders,
        "cost": {"prompt_tokens": cost.prompt_tokens, "completion_tokens": cost.completion_tokens,
                 "seconds": cost.seconds, "backend_calls": cost.backend_calls},
        **({"extra": judgment.extra} if judgment.extra else {}),
    }


def first_order(record: dict[str, Any]) -> dict[str, Any]:
    """A swapped judgment's record as the single-order judgment it contains: its AB order,
    which is the prompt a run without swap sends for this pair (same slots, same text). So one
    swap run also measures the judge without swap, at no extra cost. ``cost`` is halved, an
    even share of the two orders.

    >>> rec = {"id": "p", "swap": True, "chosen_slot": "B", "flipped": True, "orders": [
    ...     {"order": "AB", "p_a": 0.25, "verdict": "B", "valid": True, "error": None, "raw": "r"},
    ...     {"order": "BA", "p_a": 0.5, "verdict": None, "valid": True, "error": None, "raw": "s"}],
    ...     "cost": {"prompt_tokens": 10, "completion_tokens": 4, "seconds": 2.0,
    ...              "backend_calls": 1.0}}
    >>> one = first_order(rec)
    >>> one["p_chosen"], one["label_correct"], one["flipped"], one["cost"]["seconds"]
    (0.75, True, None, 1.0)
    """
    from ..judges.stats import binary_entropy

    if not record.get("swap") or not record.get("orders"):
        raise ValueError(f"record {record.get('id')!r} is not a swapped judgment")
    ab = record["orders"][0]
    slot, p_a = record["chosen_slot"], ab["p_a"]
    return {
        **record, "swap": False, "view": "AB order of a swap run", "p_a": p_a,
        "p_chosen": p_chosen_of(p_a, slot), "verdict": ab["verdict"],
        "label_correct": None if ab["verdict"] is None else ab["verdict"] == slot,
        "entropy": None if p_a is None else binary_entropy(p_a), "valid": ab["valid"],
        "error": ab["error"], "flipped": None, "raw": ab["raw"], "orders": [ab],
        "forced": bool(ab.get("forced")),
        "cost": {k: v / 2 for k, v in record["cost"].items()},
    }


def judge_pairs(judge: Judge, pairs: Sequence[Any], *, seed: int = 0, spec: str | None = None,
                batch_size: int = DEFAULT_BATCH_SIZE,
                on_batch: Callable[[list[dict[str, Any]]], None] | None = None,
                ) -> Iterator[dict[str, Any]]:
    """Judge ``pairs`` in batches of ``batch_size`` through ``compare_many``; yield one record
    per pair, in order. ``on_batch`` sees each batch's records once it is done (progress)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    settings = judge_settings(judge, spec)
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start:start + batch_size]
        shown = [presented(pair, seed) for pair in batch]
        judgments = judge.compare_many([items for items, _ in shown])
        records = [judgment_record(pair, j, slot, seed=seed, **settings)
                   for pair, j, (_, slot) in zip(batch, judgments, shown)]
        if on_batch is not None:
            on_batch(records)
        yield from records


# -- a resumable judging run (quillrl judge --out, eval winrate --judgments, eval policy) -------

# settings that later versions added: a file written before one existed was written without it
SETTING_DEFAULTS = {"force_verdict": False}


def pair_texts(pair: Any) -> dict[str, str]:
    """The texts that shape a pair's judgment, by name: the prompt and the two candidates (the
    placement coin depends only on the id and the order seed, which the settings carry)."""
    return {"prompt": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected}


def open_judgments(path: Any, settings: dict[str, Any], *, restart: bool = False,
                   option: str = "--out") -> Any:
    """The judgments file ``path`` as a :class:`~quillrl.data.ResumableJsonl`: a resume with
    other judge settings is refused (one file must not mix two judges' answers), as is a file
    that is not a judgments file, untouched."""
    from ..data.resumable import ResumableJsonl

    return ResumableJsonl(path, settings=settings, defaults=SETTING_DEFAULTS, restart=restart,
                          command="quillrl judge", option=option,
                          # one wording for judge and eval (scripts and tests match it)
                          hint="use another --out, or --restart to replace the file"
                          if option == "--out" else f"use another --out/{option} file")


def resume_pairs(writer: Any, pairs: Sequence[Any], labels: dict[str, str] | None = None,
                 ) -> tuple[dict[str, dict], list]:
    """``(records done, pairs left)`` for ``pairs`` in ``writer``'s file; a pair judged there on
    other texts (its prompt, chosen or rejected changed: ``--a``/``--b`` swapped) is refused,
    naming what changed (``labels`` renames the texts in that message)."""
    left = set(writer.todo([(p.id, pair_texts(p)) for p in pairs], labels=labels))
    records = {p.id: writer.records[p.id] for p in pairs if p.id not in left}
    return records, [p for p in pairs if p.id in left]


def run_summary(records: list[dict], **extra: Any) -> dict[str, Any]:
    """Counts, agreement and cost over the records of the selected pairs."""
    from collections import Counter

    from ..judges.genrm import error_kind
    from ..judges.stats import position_consistency
    from .alignment import accuracy

    p_chosen = [r["p_chosen"] for r in records]
    cost = {k: sum(r["cost"][k] for r in records)
            for k in ("prompt_tokens", "completion_tokens", "seconds", "backend_calls")}
    invalid = Counter(error_kind(r["error"]) for r in records if not r["valid"])
    return {"n": len(records), "valid": sum(r["valid"] for r in records),
            "forced": sum(bool(r.get("forced")) and r["valid"] for r in records),
            "invalid": sum(invalid.values()), "invalid_by_reason": dict(invalid), "accuracy": accuracy(p_chosen),
            "position_consistency": position_consistency(r["flipped"] for r in records),
            **extra, "cost": cost}


def judge_into(writer: Any, records: dict[str, dict], todo: list, judge: Judge, *, spec: str,
               seed: int, batch_size: int, progress: bool = True,
               catch_interrupt: bool = True) -> bool:
    """Judge ``todo`` into ``writer`` (and ``records``), under a progress bar on stderr; True if
    the user interrupted it (with ``catch_interrupt``; else Ctrl-C propagates). Lines written
    before Ctrl-C are complete and flushed, so a rerun resumes. ``writer`` None: the records
    are only collected."""
    by_id = {p.id: p for p in todo}
    bar, task = progress_bar(len(todo), f"judging with {spec}") if progress else (None, None)
    if bar is not None:
        show_retries(judge, bar, task, f"judging with {spec}")
    try:
        with bar if bar is not None else _nullcontext():
            for record in judge_pairs(judge, todo, seed=seed, spec=spec, batch_size=batch_size,
                                      on_batch=lambda b: bar and bar.advance(task, len(b))):
                record = {**record, "inputs": input_digests(pair_texts(by_id[record["id"]]))}
                if writer is not None:
                    writer.write(record)
                records[record["id"]] = record
    except KeyboardInterrupt:
        if not catch_interrupt:
            raise
        return True
    return False


@dataclass(frozen=True)
class JudgeRun:
    """How a verb judges pairs: its judge spec, a factory that builds the judge (a context
    manager), the settings its records carry (and a resume checks), the order seed and the
    pairs per ``compare_many`` call."""

    spec: str
    make: Callable[[], Any]
    settings: dict[str, Any]
    seed: int = 0
    batch_size: int = DEFAULT_BATCH_SIZE

    @classmethod
    def of(cls, spec: str, options: JudgeOptions, *, seed: int = 0,
           batch_size: int = DEFAULT_BATCH_SIZE) -> JudgeRun:
        """The run of judge ``spec`` built with ``options``
        (:class:`~quillrl.judges.options.JudgeOptions`)."""
        return cls(spec=spec, make=lambda: options.build(spec),
                   settings={**options.judge_settings(spec), "order_seed": seed}, seed=seed,
                   batch_size=batch_size)


# a head-to-head pair holds A as chosen and B as rejected (eval/headtohead.py)
AB_LABELS = {"prompt": "task prompt", "chosen": "A response", "rejected": "B response"}


def judge_units(units: Sequence[dict[str, Any]], run: JudgeRun, *, judgments: Any = None,
                catch_interrupt: bool = True) -> tuple[list[dict], bool]:
    """One judgment record per unit's pair (``eval winrate``, ``eval policy``), in order, and
    whether Ctrl-C stopped the run.

    With ``judgments`` the records go to that file and a rerun resumes it, as ``quillrl
    judge --out`` does (same records, same refusal of a file made with another judge, mode,
    swap or seed, or of a pair judged on other texts: ``--a`` and ``--b`` swapped). A judge
    that fails mid-run leaves every finished record in the file."""
    from ..errors import QuillError

    pairs = [u["pair"] for u in units]
    records: dict[str, dict] = {}
    if judgments is None:
        with run.make() as judge:
            interrupted = judge_into(None, records, pairs, judge, spec=run.spec, seed=run.seed,
                                     batch_size=run.batch_size, catch_interrupt=False)
        return [records[p.id] for p in pairs], interrupted
    with open_judgments(judgments, run.settings, option="--judgments") as writer:
        records, todo = resume_pairs(writer, pairs, labels=AB_LABELS)
        interrupted = False
        try:
            if todo:
                with run.make() as judge:
                    interrupted = judge_into(writer, records, todo, judge, spec=run.spec,
                                             seed=run.seed, batch_size=run.batch_size,
                                             catch_interrupt=catch_interrupt)
        except QuillError as exc:
            raise QuillError(f"{exc}\n{len(records)} of {len(pairs)} judgments are saved in "
                             f"{judgments}; rerun the same command to judge the rest") from exc
    return [records[p.id] for p in pairs if p.id in records], interrupted


def judge_each(specs: Sequence[str], pairs: Sequence[Any], options: JudgeOptions, *,
               out: Any = None, seed: int = 0,
               batch_size: int = DEFAULT_BATCH_SIZE) -> list[list[dict]]:
    """Each judge's records over ``pairs`` (``eval alignment --judge``), one judge after the
    other; with ``out`` every record is also written there (rewritten whole, not resumed)."""
    from ..data import JsonlWriter

    runs = []
    writer = JsonlWriter(out) if out is not None else None
    try:
        for spec in specs:
            records: dict[str, dict] = {}
            with options.build(spec) as judge:
                judge_into(writer, records, list(pairs), judge, spec=spec, seed=seed,
                           batch_size=batch_size, catch_interrupt=False)
            runs.append([records[p.id] for p in pairs])
    finally:
        if writer is not None:
            writer.close()
    return runs


def judged_units(units: list[dict[str, Any]], records: list[dict]) -> list[dict[str, Any]]:
    """The units that have a record (all of them unless the run was interrupted), in order."""
    ids = {r["id"] for r in records}
    return [u for u in units if u["pair"].id in ids]


def _nullcontext():
    import contextlib

    return contextlib.nullcontext()


def progress_bar(total: int, description: str):
    """A rich progress bar on stderr, so stdout keeps only the JSON summary."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(),
                        console=Console(stderr=True))
    task = progress.add_task(description, total=total)
    return progress, task


def show_retries(judge: Any, progress: Any, task: Any, description: str) -> None:
    """Show a remote judge's retries on its progress bar as they happen (a server that never
    answers would otherwise look like a bar stuck at 0)."""
    from rich.markup import escape

    backend = getattr(judge, "backend", None)
    if backend is not None and hasattr(backend, "on_retry"):
        # escaped: the description is rich markup, where "[...]" would be read as a style
        backend.on_retry = lambda n, why: progress.update(
            task, description=escape(f"{description} (retries: {n}, last: {why[:60]})"))
