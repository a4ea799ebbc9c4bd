"""``quillrl distill``: GenRM SFT data from a teacher's judgments, kept only where they hold up.

RLCS trains its GenRM by SFT on reasoning chains distilled from a stronger teacher. For every
labelled pair the teacher (any GenRM judge spec: a local model, an OpenAI-compatible server, or
a GenRM we trained) judges *both* presentation orders in reasoning mode, chosen in slot A and
then in slot B, in one batched call per batch of pairs. A pair is kept only if

1. both orders are valid judgments (else ``invalid``),
2. both pick the same story, whatever its slot (else ``position_inconsistent``), and
3. that story is the one the human preferred (else ``disagrees_with_human``).

The consistency filter is ours: a chain whose verdict flips with the order, or contradicts the
human, would teach the student position bias or a wrong preference.

Every kept order becomes one SFT example (so both orders are trained): chat ``messages`` whose
system and user turns are exactly what :class:`~quillrl.judges.GenRMJudge` sends (from
:func:`~quillrl.judges.template.judge_prompt`, reasoning mode), and whose assistant turn is the
teacher's analysis and verdict in the canonical format
(:func:`~quillrl.judges.template.format_judgment`), i.e. precisely the reply a judge must write.

Files. ``--out`` holds the examples (``id`` = ``<pair id>:<order>``, ``pair_id``, ``order``,
``label``, ``messages``). Beside it, ``<out>.ledger.jsonl`` holds one line per processed pair,
dropped ones included: its outcome, the verdict of each order, ``p(A)`` of each order and the
teacher's error if any. Both are append-only and flushed line by line. Examples are written
before their ledger line, so the ledger never claims a pair whose examples are missing; a rerun
skips every pair in the ledger, and first removes examples whose pair never reached the ledger
(a crash between the two writes), so that pair is judged again instead of appearing twice.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .data import JsonlWriter, PreferencePair, read_pairs, write_jsonl
from .data.jsonl import json_lines
from .errors import ConfigError, DataError
from .judges import GenRMJudge, Judge, Judgment, make_judge
from .judges.template import format_judgment, judge_prompt

KEPT = "kept"
DROP_REASONS = ("invalid", "position_inconsistent", "disagrees_with_human")
OUTCOMES = (KEPT, *DROP_REASONS)
# the letter each order must write for the human's choice: chosen sits in slot A, then in slot B
HUMAN_LETTER = {"AB": "A", "BA": "B"}


def ledger_path(out: str | Path) -> Path:
    """Where the ledger of processed pairs lives: beside the examples file."""
    out = Path(out)
    return out.with_name(out.name + ".ledger.jsonl")


def classify(judgment: Judgment) -> str:
    """The outcome of a swapped reasoning judgment of ``(prompt, chosen, rejected)``.

    In order AB slot A holds the chosen story; in order BA slot B does. So the teacher agrees
    with the human iff it writes A in order AB and B in order BA.
    """
    if not judgment.valid or len(judgment.orders) != 2:
        return "invalid"
    ab, ba = judgment.orders
    if ab.verdict is None or ba.verdict is None:
        return "invalid"
    picks_chosen = (ab.verdict == HUMAN_LETTER["AB"], ba.verdict == HUMAN_LETTER["BA"])
    if picks_chosen[0] != picks_chosen[1]:
        return "position_inconsistent"
    return KEPT if picks_chosen[0] else "disagrees_with_human"


def examples_for(pair: PreferencePair, judgment: Judgment) -> list[dict]:
    """One chat example per order of a kept pair: the judge prompt and the teacher's reply."""
    out = []
    for result in judgment.orders:
        a, b = (pair.chosen, pair.rejected) if result.order == "AB" else (pair.rejected, pair.chosen)
        prompt = judge_prompt(pair.prompt, a, b, "reasoning")
        reply = format_judgment(result.analysis or "", result.verdict)
        out.append({"id": f"{pair.id}:{result.order}", "pair_id": pair.id, "order": result.order,
                     "label": HUMAN_LETTER[result.order],
                     "messages": [*map(dict, prompt.messages), {"role": "assistant", "content": reply}]})
    return out


def ledger_entry(pair: PreferencePair, judgment: Judgment, outcome: str) -> dict:
    return {"id": pair.id, "outcome": outcome,
            "verdicts": {r.order: r.verdict for r in judgment.orders},
            "p_a": {r.order: r.p_a for r in judgment.orders},
            "error": judgment.error}


@dataclass
class DistillStats:
    """Outcome counts: over the whole ledger (this run and earlier ones) and this run alone."""

    total: Counter = field(default_factory=Counter)
    this_run: Counter = field(default_factory=Counter)

    def add(self, outcome: str, now: bool) -> None:
        self.total[outcome] += 1
        if now:
            self.this_run[outcome] += 1

    @staticmethod
    def _split(counts: Counter) -> dict:
        return {"kept": counts[KEPT], "dropped": {r: counts[r] for r in DROP_REASONS}}

    def summary(self) -> dict:
        return {**self._split(self.total), "this_run": self._split(self.this_run)}


def make_teacher(teacher: str | Judge, *, max_new_tokens: int = 512, temperature: float = 0.0,
                 seed: int | None = 0) -> GenRMJudge:
    """A swapped, reasoning-mode GenRM judge from a spec (or a ready judge, checked)."""
    if isinstance(teacher, str):
        if not teacher.startswith("genrm:"):
            raise ConfigError(f"--teacher {teacher!r}: distillation needs a judge that writes an "
                              "analysis, i.e. a GenRM spec genrm:<backend> (e.g. "
                              "genrm:local:smollm2-135m-instruct or genrm:openai:http://host:port/v1#model)")
        teacher = make_judge(teacher, mode="reasoning", swap=True, max_new_tokens=max_new_tokens,
                             temperature=temperature, seed=seed)
    if not (isinstance(teacher, GenRMJudge) and teacher.mode == "reasoning" and teacher.swap):
        raise ConfigError(f"the teacher must be a GenRMJudge in reasoning mode with swap=True, got {teacher!r}")
    return teacher


def _drop_orphans(out: Path, done: set[str]) -> int:
    """Remove examples whose pair is not in the ledger (a crash between the two writes)."""
    with JsonlWriter(out, resume=True, id_key="pair_id") as scan:  # also cuts a half-written last line
        orphans = scan.done_ids - done
    if not orphans:
        return 0
    rows = [v for _, v in json_lines(out) if not isinstance(v, DataError)]
    kept = [r for r in rows if str(r.get("pair_id")) not in orphans]
    write_jsonl(out, kept)  # atomic: a crash here leaves the old file
    return len(rows) - len(kept)


def _batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def distill(pairs: str | Path, teacher: str | Judge, out: str | Path, *, limit: int | None = None,
            batch_size: int = 8, max_new_tokens: int = 512, temperature: float = 0.0,
            seed: int | None = 0) -> dict:
    """Judge every pair of ``pairs`` (the first ``limit``) with the teacher; write SFT examples
    for consistent, human-agreeing pairs to ``out``; return the JSON summary.

    Resumable: pairs already in the ledger are skipped (see the module docstring).
    """
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    out, ledger = Path(out), ledger_path(out)
    records = list(read_pairs(pairs).records)[:limit]
    judge = make_teacher(teacher, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    stats = DistillStats()
    start = time.perf_counter()
    with JsonlWriter(ledger, resume=True) as ledger_writer:
        ids = {p.id for p in records}
        for _, row in json_lines(ledger) if ledger.exists() else ():
            if isinstance(row, dict) and row.get("id") in ids and row.get("outcome") in OUTCOMES:
                stats.add(row["outcome"], now=False)
        orphans = _drop_orphans(out, ledger_writer.done_ids)
        todo = [p for p in records if p.id not in ledger_writer.done_ids]
        with JsonlWriter(out, resume=True) as examples:
            for batch in _batches(todo, batch_size):
                judgments = judge.compare_many([(p.prompt, p.chosen, p.rejected) for p in batch])
                for pair, judgment in zip(batch, judgments):
                    outcome = classify(judgment)
                    if outcome == KEPT:
                        for example in examples_for(pair, judgment):
                            examples.write(example)
                    ledger_writer.write(ledger_entry(pair, judgment, outcome))
                    stats.add(outcome, now=True)
    usage = judge.usage
    return {"pairs": len(records), "already_done": len(records) - len(todo), "judged": len(todo),
            **stats.summary(), "examples": 2 * stats.total[KEPT], "orphans_removed": orphans,
            "out": str(out), "ledger": str(ledger), "teacher": judge.name,
            "seconds": round(time.perf_counter() - start, 2),
            "cost": {"prompt_tokens": usage.cost.prompt_tokens,
                     "completion_tokens": usage.cost.completion_tokens}}


def read_examples(path: str | Path) -> list[dict]:
    """SFT examples written by :func:`distill` (or by hand: any ``{"messages": [...]}`` lines
    ending with an assistant turn), validated with file and line in every error."""
    rows = []
    for line, value in json_lines(path):
        if isinstance(value, DataError):
            raise value
        messages = value.get("messages") if isinstance(value, dict) else None
        if not (isinstance(messages, list) and len(messages) >= 2
                and all(isinstance(m, dict) and "role" in m and isinstance(m.get("content"), str)
                        for m in messages)):
            raise DataError("expected 'messages': a list of at least two {role, content} turns",
                            path=str(path), line=line, field="messages")
        if messages[-1]["role"] != "assistant":
            raise DataError("the last turn must be the assistant's (the target of SFT)",
                            path=str(path), line=line, field="messages")
        rows.append(value)
    if not rows:
        raise DataError("no examples", path=str(path))
    return rows

