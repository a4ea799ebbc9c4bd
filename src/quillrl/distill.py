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
:func:`~quillrl.judges.template.judge_prompt`, reasoning mode, by the pair's principle when it has
one), and whose assistant turn is the
teacher's analysis and verdict in the canonical format
(:func:`~quillrl.judges.template.format_judgment`), i.e. precisely the reply a judge must write.

The teacher continues the reasoning prefill (``<analysis>\nCoherence:``, from the one
template function), so every kept reply, and every SFT target, starts with it.

``force_verdict`` (``--force-verdict``) lets a teacher that writes an analysis but stops before
its verdict (a small model, or a tight ``max_new_tokens``) count: the analysis is closed and the
verdict read from ``p(A)`` there (docs/design.md, "Forced verdict"). The SFT target is then the
closed analysis and that letter, so the student learns to close what the teacher left open.
Each example says whether it was forced, and the summary counts kept pairs with a forced order.

What a run never pays twice, and never mixes:

* a response cache (``<out>.cache.jsonl``, or ``--cache``) in front of the teacher's backend,
  keyed by (teacher, template version, prompt, sampling params)
  (:class:`~quillrl.backends.cache.CachedBackend`): a rerun, a crash, or the same pairs
  distilled into another ``--out`` costs no teacher call for what was answered once;
* ``<out>.meta.json`` records the teacher, the template version and the sampling settings; a
  resume with any of them different is refused, naming the difference (the examples of two
  teachers or two templates must not end up in one file);
* limits: ``max_rps`` prompts per second, the backend's own concurrency (``max_concurrency``
  for openai teachers); the summary gives tokens spent, tokens the cache saved and, with
  prices per million tokens, the cost.

Bad teacher output never stops a run. An unparseable reply (garbage, empty, cut off at
``max_new_tokens``), or an analysis that does not start with the reasoning prefill's first
dimension (a teacher that wrote its own ``<analysis>`` instead of continuing ours: no SFT
target can be made from it), is an ``invalid`` outcome, counted by reason
(``invalid_by_reason``). A
teacher call that fails for good (timeout, connection, HTTP error) is retried pair by pair;
a pair that still fails is counted under ``teacher_failed`` by reason and left out of the
ledger, so a rerun asks again. A pair whose judge prompt plus ``max_new_tokens`` exceeds the
teacher's context (when its backend knows its tokenizer) is skipped, counted in
``too_long`` with its token length, never truncated into a different pair. A run in which
every teacher call failed (a teacher that refuses every connection) is an error naming the
reasons, not a success with zero examples.

Files. ``--out`` holds the examples (``id`` = ``<pair id>:<order>``, ``pair_id``, ``order``,
``label``, ``messages``). Beside it, ``<out>.ledger.jsonl`` holds one line per processed pair,
dropped ones included: its outcome, the verdict of each order, ``p(A)`` of each order and the
teacher's error if any. Both are append-only and flushed line by line. Examples are written
before their ledger line, so the ledger never claims a pair whose examples are missing; a rerun
skips every pair in the ledger, and first removes examples whose pair never reached the ledger
(a crash between the two writes), so that pair is judged again instead of appearing twice.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .backends.base import Backend
from .backends.cache import CachedBackend, ResponseCache
from .data import PreferencePair, ResumableJsonl, read_pairs, write_jsonl
from .errors import BackendError, ConfigError
from .judges import GenRMJudge, Judge, Judgment, make_judge
from .judges.genrm import error_kind
from .judges.template import (ANALYSIS_OPEN, REASONING_PREFILL, TEMPLATE_VERSION, format_judgment,
                              judge_prompt)

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


# What a kept analysis starts with: the prefill's first dimension (judges/template.py spells it).
_FIRST_DIMENSION = REASONING_PREFILL[len(ANALYSIS_OPEN) + 1:]
NO_PREFILL = "analysis does not start with the prefill"


def without_prefill(judgment: Judgment) -> bool:
    """Whether an order's analysis does not start with the prefill's first dimension: the
    teacher did not continue the prefill, so no SFT target (which starts with it) can be made."""
    return any(r.analysis is not None and not r.analysis.strip().startswith(_FIRST_DIMENSION)
               for r in judgment.orders)


def examples_for(pair: PreferencePair, judgment: Judgment) -> list[dict]:
    """One chat example per order of a kept pair: the judge prompt and the teacher's reply."""
    out = []
    for result in judgment.orders:
        a, b = (pair.chosen, pair.rejected) if result.order == "AB" else (pair.rejected, pair.chosen)
        prompt = judge_prompt(pair.prompt, a, b, "reasoning", pair.judge_principle())
        reply = format_judgment(result.analysis or "", result.verdict)
        out.append({"id": f"{pair.id}:{result.order}", "pair_id": pair.id, "order": result.order,
                     "label": HUMAN_LETTER[result.order],
                     "forced": result.forced,
                     "messages": [*map(dict, prompt.messages), {"role": "assistant", "content": reply}]})
    return out


def ledger_entry(pair: PreferencePair, judgment: Judgment, outcome: str) -> dict:
    return {"id": pair.id, "outcome": outcome,
            "verdicts": {r.order: r.verdict for r in judgment.orders},
            "p_a": {r.order: r.p_a for r in judgment.orders},
            "forced": {r.order: r.forced for r in judgment.orders},
            "error": judgment.error}


@dataclass
class DistillStats:
    """Outcome counts: over the whole ledger (this run and earlier ones) and this run alone."""

    total: Counter = field(default_factory=Counter)
    this_run: Counter = field(default_factory=Counter)
    invalid_by_reason: Counter = field(default_factory=Counter)
    kept_forced: int = 0  # kept pairs with at least one forced order (force_verdict)

    def add(self, outcome: str, now: bool, reason: str | None = None, forced: bool = False) -> None:
        self.total[outcome] += 1
        if now:
            self.this_run[outcome] += 1
        if outcome == "invalid":
            self.invalid_by_reason[reason or "unknown"] += 1
        self.kept_forced += outcome == KEPT and forced

    @staticmethod
    def _split(counts: Counter) -> dict:
        return {"kept": counts[KEPT], "dropped": {r: counts[r] for r in DROP_REASONS}}

    def summary(self) -> dict:
        return {**self._split(self.total), "kept_forced": self.kept_forced,
                "invalid_by_reason": dict(self.invalid_by_reason), "this_run": self._split(self.this_run)}


def make_teacher(teacher: str | Judge, *, max_new_tokens: int = 512, temperature: float = 0.0,
                 seed: int | None = 0, backend_options: dict | None = None,
                 force_verdict: bool = False) -> GenRMJudge:
    """A swapped, reasoning-mode GenRM judge from a spec (or a ready judge, checked)."""
    if isinstance(teacher, str):
        if not teacher.startswith("genrm:"):
            raise ConfigError(f"--teacher {teacher!r}: distillation needs a judge that writes an "
                              "analysis, i.e. a GenRM spec genrm:<backend> (e.g. "
                              "genrm:local:smollm2-135m-instruct or genrm:openai:http://host:port/v1#model)")
        teacher = make_judge(teacher, mode="reasoning", swap=True, max_new_tokens=max_new_tokens,
                             temperature=temperature, seed=seed, backend_options=backend_options,
                             force_verdict=force_verdict)
    if not (isinstance(teacher, GenRMJudge) and teacher.mode == "reasoning" and teacher.swap):
        raise ConfigError(f"the teacher must be a GenRMJudge in reasoning mode with swap=True, got {teacher!r}")
    return teacher


META_DEFAULTS = {"force_verdict": False}


def meta_path(out: str | Path) -> Path:
    """Where the record of the run's teacher, template and sampling settings lives."""
    out = Path(out)
    return out.with_name(out.name + ".meta.json")


def open_ledger(out: Path, meta: dict) -> ResumableJsonl:
    """The ledger of ``out`` (one line per processed pair, keyed by pair id), its settings in
    ``<out>.meta.json``: a resume with another teacher, template or sampling settings is refused,
    naming the difference (the examples of two teachers must not end up in one file), and so is
    a ledger without its meta record."""
    return ResumableJsonl(ledger_path(out), settings=meta, meta=meta_path(out), defaults=META_DEFAULTS,
                          required=("id", "outcome"), command="quillrl distill",
                          meta_names="teacher and template",
                          hint="Use another --out, or the same teacher and settings to resume")


def check_meta(out: Path, meta: dict) -> None:
    """Record ``meta`` beside a new ``out``; refuse to resume one written with other settings."""
    open_ledger(out, meta).close()


def pair_texts(pair: PreferencePair) -> dict[str, str]:
    """The texts that shape a pair's judgments (what its ledger line records digests of)."""
    return {"prompt": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected}


def _context_window(backend: Backend) -> int | None:
    """The teacher's context length in tokens, where its backend can tell (local, vllm)."""
    config = getattr(getattr(backend, "model", None), "config", None)
    n = getattr(config, "max_position_embeddings", None)
    if n is None:
        engine = getattr(getattr(backend, "llm", None), "llm_engine", None)
        n = getattr(getattr(engine, "model_config", None), "max_model_len", None)
    return int(n) if n else None


def _prompt_tokens(backend: Backend, pair: PreferencePair) -> int | None:
    """The longer of the pair's two judge prompts in the teacher's tokens, if it has a tokenizer."""
    tokenizer = getattr(backend, "tokenizer", None)
    if tokenizer is None:
        return None
    from .backends.prompts import encode

    principle = pair.judge_principle()
    return max(len(encode(tokenizer, judge_prompt(pair.prompt, a, b, "reasoning", principle)))
               for a, b in ((pair.chosen, pair.rejected), (pair.rejected, pair.chosen)))


def _drop_orphans(out: Path, done: set[str]) -> int:
    """Remove examples whose pair is not in the ledger (a crash between the two writes)."""
    with open_examples(out) as scan:  # also cuts a half-written last line; refuses a foreign file
        rows = list(scan.records.values())
    kept = [r for r in rows if str(r.get("pair_id")) in done]
    if len(kept) == len(rows):
        return 0
    write_jsonl(out, kept)  # atomic: a crash here leaves the old file
    return len(rows) - len(kept)


def open_examples(out: Path) -> ResumableJsonl:
    """The examples file, appended to (its settings are checked on the ledger)."""
    return ResumableJsonl(out, settings={}, required=("id", "pair_id"), command="quillrl distill")


def _batches(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


@dataclass
class Prices:
    """USD per million prompt and completion tokens, for the cost line of the summary."""

    prompt: float = 0.0
    completion: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt + completion_tokens * self.completion) / 1e6


def distill(pairs: str | Path, teacher: str | Judge, out: str | Path, *, limit: int | None = None,
            batch_size: int = 8, max_new_tokens: int = 512, temperature: float = 0.0,
            seed: int | None = 0, cache: str | Path | None = None, max_rps: float | None = None,
            max_concurrency: int | None = None, max_prompt_tokens: int | None = None,
            prices: Prices | None = None, force_verdict: bool = False) -> dict:
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
    options = {"max_concurrency": max_concurrency} if max_concurrency else None
    judge = make_teacher(teacher, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                         backend_options=options, force_verdict=force_verdict)
    params = judge.params
    meta = {"teacher": judge.name, "template": TEMPLATE_VERSION,
            "max_new_tokens": params.max_new_tokens, "temperature": params.temperature,
            "seed": params.seed, "force_verdict": judge.force_verdict}
    if out.exists() and not ledger.exists() and not meta_path(out).exists():
        raise ConfigError(f"{out} exists without {meta_path(out).name}, so the teacher and "
                          "template that wrote it are unknown; resuming could mix two teachers. "
                          "Use another --out")
    check_meta(out, meta)  # before the cache or any file is touched
    teacher_backend = judge.backend
    cached = judge.backend = CachedBackend(teacher_backend, ResponseCache(
        cache or out.with_name(out.name + ".cache.jsonl"), judge.name, TEMPLATE_VERSION), max_rps=max_rps)
    context = max_prompt_tokens or _context_window(teacher_backend)
    stats, start = DistillStats(), time.perf_counter()
    failed: Counter = Counter()
    too_long: list[dict] = []
    try:
        with open_ledger(out, meta) as ledger_writer:
            left = set(ledger_writer.todo([(p.id, pair_texts(p)) for p in records]))
            for pair in records:
                row = ledger_writer.records.get(pair.id)
                if row is not None and row.get("outcome") in OUTCOMES:
                    stats.add(row["outcome"], now=False, reason=row.get("reason"),
                              forced=any((row.get("forced") or {}).values()))
            orphans = _drop_orphans(out, set(ledger_writer.records))
            todo = [p for p in records if p.id in left]
            fits = []
            for pair in todo:
                n = _prompt_tokens(teacher_backend, pair) if context else None
                if n is not None and n + params.max_new_tokens > context:
                    too_long.append({"id": pair.id, "prompt_tokens": n})
                else:
                    fits.append(pair)
            with open_examples(out) as examples:
                for batch in _batches(fits, batch_size):
                    for pair, judgment in _judge_batch(judge, batch, failed):
                        outcome = classify(judgment)
                        reason = error_kind(judgment.error) if outcome == "invalid" else None
                        if outcome != "invalid" and without_prefill(judgment):
                            outcome, reason = "invalid", NO_PREFILL
                        if outcome == KEPT:
                            for example in examples_for(pair, judgment):
                                examples.write(example)
                        ledger_writer.write({**ledger_entry(pair, judgment, outcome), "reason": reason},
                                            inputs=pair_texts(pair))
                        stats.add(outcome, now=True, reason=reason, forced=judgment.forced)
    finally:
        cached.cache.close()
        judge.backend = teacher_backend
        if isinstance(teacher, str):
            judge.close()  # we built it; a judge handed in stays its caller's
    if failed and not sum(stats.this_run.values()) and len(todo) - len(too_long) == sum(failed.values()):
        # Nothing was judged and every call failed: a run that reports success with zero
        # examples would hide a teacher that is down or unreachable.
        raise BackendError(f"every teacher call failed ({', '.join(f'{k}: {v}' for k, v in failed.items())}); "
                           f"nothing was distilled into {out}. Is the teacher running and reachable?")
    spent, saved = cached.usage, cached.usage.extra
    prices = prices or Prices()
    return {"pairs": len(records), "already_done": len(records) - len(todo), "judged": len(todo),
            **stats.summary(), "examples": 2 * stats.total[KEPT], "orphans_removed": orphans,
            "teacher_failed": dict(failed), "too_long": {"count": len(too_long), "context": context,
                                                         "pairs": too_long},
            "out": str(out), "ledger": str(ledger), "cache": str(cached.cache.path),
            "teacher": judge.name, "template": TEMPLATE_VERSION, "force_verdict": judge.force_verdict,
            "seconds": round(time.perf_counter() - start, 2),
            "cost": {"prompt_tokens": spent.prompt_tokens, "completion_tokens": spent.completion_tokens,
                     "teacher_prompts": spent.calls, "cache_hits": saved["cache_hits"],
                     "cache_misses": saved["cache_misses"],
                     "saved_prompt_tokens": saved["saved_prompt_tokens"],
                     "saved_completion_tokens": saved["saved_completion_tokens"],
                     "usd": round(prices.cost(spent.prompt_tokens, spent.completion_tokens), 6)}}


def _judge_batch(judge: GenRMJudge, batch: list[PreferencePair],
                 failed: Counter) -> list[tuple[PreferencePair, Judgment]]:
    """The batch's judgments; after a failed call, pair by pair, leaving out (and counting by
    reason) the pairs whose call still fails."""
    items = [(p.prompt, p.chosen, p.rejected, p.judge_principle()) for p in batch]
    try:
        return list(zip(batch, judge.compare_many(items)))
    except BackendError as exc:
        if len(batch) == 1:
            failed[_failure_reason(exc)] += 1
            return []
    return [done for pair in batch for done in _judge_batch(judge, [pair], failed)]


def _failure_reason(exc: BackendError) -> str:
    """"timeout", "HTTP 503", "connection" or "backend error": what to count a failed call as."""
    text = str(exc)
    status = re.search(r"HTTP (\d{3})", text)
    if "timed out" in text:
        return "timeout"
    if status:
        return f"HTTP {status.group(1)}"
    return "connection" if "onnection" in text else "backend error"
