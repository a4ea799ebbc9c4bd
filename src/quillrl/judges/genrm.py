"""The generative reward model judge (RLCS): compare two stories, reason, give a verdict.

``p(A)`` is the judge's probability of the token ``A`` at the verdict position, renormalised
over {A, B} (docs/design.md, "GenRM judgment"). How each mode gets there, for a batch of pairs:

* ``verdict``: one ``choice_probs`` call on every prompt pre-filled up to ``<verdict>``
  (:data:`~quillrl.judges.template.VERDICT_PREFIX`). No generation.
* ``reasoning``: one ``generate`` call for every order of every pair, each continuing the
  reasoning prefill (``<analysis>\\nCoherence:``, from the one template function); prefill +
  reply is parsed as one judgment (:func:`~quillrl.judges.parse.parse_judgment`), and for the valid ones one more
  ``choice_probs`` call reads ``p(A)`` at prompt + reply up to and including its ``<verdict>``.
  We re-score rather than read the generation's top logprobs because a top-k list often lacks
  the losing letter after a confident verdict (so ``p(B)`` would be unknown, and entropy with
  it), servers differ in whether and how they return logprobs, and one extra forward pass is
  cheap next to the generation. The letter the judge *wrote* stays the order's ``verdict``;
  ``p(A)`` says how sure it was at that point.

Swap debiasing (``swap=True``) presents every pair in both orders in the same batch and
combines them as ``p(A ≻ B) = (p_AB(A) + 1 - p_BA(A)) / 2``; the judgment keeps both orders
and whether the winner flipped. If either order is invalid the whole judgment is invalid
(``p_a=None``, error naming the order): falling back to the one valid order would quietly
bring back the position bias that swapping exists to remove. The valid order's numbers stay
in ``Judgment.orders`` for audit.

Reasoning-mode generation stops at ``</verdict>``. OpenAI-compatible servers drop the stop
string from the text and local generation may keep it; a reply that finished on a stop with
an unclosed final ``<verdict>`` gets ``</verdict>`` back before parsing (``raw`` keeps the
text exactly as returned). That also completes a reply that ended on EOS right after its
letter, which we accept: the letter was written. A reply that hit the token limit is never
completed.

``force_verdict=True`` (off by default) closes a reply that wrote an analysis but no verdict
(:func:`~quillrl.judges.parse.close_for_verdict`) and reads ``p(A)`` at the closed verdict
position, the judge's verdict being its more likely letter there. The order is valid and
``forced``; reports count forced judgments apart (docs/design.md, "Forced verdict").
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..backends.base import Backend, ChatPrompt, Generation, SamplingParams
from ..errors import BackendError, ConfigError
from .base import Cost, Judge, Judgment, Order, OrderResult, Pair, invalid_judgment
from .parse import ParsedJudgment, close_for_verdict, parse_judgment
from .stats import binary_entropy, swap_debias, verdict_distribution, verdict_of
from .template import ANALYSIS_OPEN, MODES, VERDICT_CHOICES, VERDICT_CLOSE, Mode, judge_prompt

@dataclass
class _Run:
    """What one ``compare_many`` call gathers, one slot per (pair, order) job."""

    results: list[OrderResult | None]
    gens: list[Generation | None]
    probe_tokens: list[float]
    calls: int = 0


NO_VERDICT_MASS = "no probability on A or B at the verdict position"
_UNCLOSED_VERDICT = re.compile(r"<verdict>[^<]*$")
_OTHER = {"A": "B", "B": "A"}


class GenRMJudge(Judge):
    """Pairwise judge backed by a chat model that writes ``<analysis>`` then ``<verdict>``.

    ``backend`` is any :class:`~quillrl.backends.base.Backend` (local transformers, an
    OpenAI-compatible server, or a fake in tests). ``max_new_tokens``, ``temperature``
    (0 = greedy), ``seed`` and ``force_verdict`` only matter in reasoning mode.
    """

    reads_principle = True  # the principle goes into the template, before the stories

    def __init__(self, backend: Backend, mode: Mode = "reasoning", swap: bool = False,
                 max_new_tokens: int = 512, temperature: float = 0.0, seed: int | None = None,
                 force_verdict: bool = False):
        if mode not in MODES:
            raise ConfigError(f"judge mode must be one of {list(MODES)}, got {mode!r}")
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
        if force_verdict and mode != "reasoning":
            raise ConfigError("force_verdict closes an unfinished analysis; it needs mode "
                              f"'reasoning' (verdict-only mode writes none), got mode {mode!r}")
        self.backend, self.mode, self.swap = backend, mode, bool(swap)
        self.force_verdict = bool(force_verdict)
        self.params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature,
                                     seed=seed, stop=(VERDICT_CLOSE,))
        self.name = f"genrm:{getattr(backend, 'name', type(backend).__name__)}"

    @property
    def orders(self) -> tuple[Order, ...]:
        return ("AB", "BA") if self.swap else ("AB",)

    def _compare_many(self, pairs: list[Pair]) -> list[Judgment]:
        # One job per (pair, order), pair-major, so job k belongs to pair k // len(orders).
        jobs = [(i, order) for i in range(len(pairs)) for order in self.orders]
        prompts = []
        for i, order in jobs:
            prompt, a, b, principle = pairs[i]
            first, second = (a, b) if order == "AB" else (b, a)
            prompts.append(judge_prompt(prompt, first, second, self.mode, principle))

        start = time.perf_counter()
        run = _Run(results=[None] * len(jobs), gens=[None] * len(jobs),
                   probe_tokens=[0.0] * len(jobs))
        if self.mode == "verdict":
            self._verdict_only(prompts, jobs, run)
        else:
            self._reasoning(prompts, jobs, run)
        seconds = time.perf_counter() - start

        n_orders, out = len(self.orders), []
        for i in range(len(pairs)):
            span = range(i * n_orders, (i + 1) * n_orders)
            gens = [run.gens[k] for k in span if run.gens[k] is not None]
            cost = Cost(
                prompt_tokens=round(sum(run.probe_tokens[k] for k in span))
                + sum(g.prompt_tokens for g in gens),
                completion_tokens=sum(g.completion_tokens for g in gens),
                # the batch's wall time and calls, shared evenly: they sum to the batch totals
                seconds=seconds / len(pairs),
                backend_calls=run.calls / len(pairs),
            )
            out.append(self._combine(tuple(run.results[k] for k in span), cost))
        return out

    def _verdict_only(self, prompts: list[ChatPrompt], jobs, run: "_Run") -> None:
        probs = self._choice_probs(prompts, list(range(len(jobs))), run)
        for k, ((_, order), row) in enumerate(zip(jobs, probs)):
            run.results[k] = self._order_from_probs(order, row, letter=None, raw=_probs_text(row))

    def _reasoning(self, prompts: list[ChatPrompt], jobs, run: "_Run") -> None:
        # the probes start with their own prompt and chain: a local backend reads them after
        # the KV cache its generation left (backends/kept_cache.py), a server from its prefix cache
        with self.backend.reusing_generation_cache():
            self._reason_and_probe(prompts, jobs, run)

    def _reason_and_probe(self, prompts: list[ChatPrompt], jobs, run: "_Run") -> None:
        gens = self.backend.generate(prompts, self.params)
        run.calls += 1
        if len(gens) != len(prompts):
            raise BackendError(f"{self.backend!r} returned {len(gens)} generations for "
                               f"{len(prompts)} prompts")
        run.gens = list(gens)
        probes, probe_jobs, parsed_of = [], [], {}
        for k, ((_, order), gen) in enumerate(zip(jobs, gens)):
            parsed, probe = verdict_probe(prompts[k], _with_stop(gen), force=self.force_verdict)
            if probe is None:
                run.results[k] = OrderResult(order=order, p_a=None, verdict=None, valid=False,
                                             error=parsed.error, raw=gen.text,
                                             analysis=parsed.analysis)
                continue
            parsed_of[k] = parsed
            probes.append(probe)
            probe_jobs.append(k)
        if not probes:
            return  # nothing parsed: no verdict position to score, so no second call
        probs = self._choice_probs(probes, probe_jobs, run)
        for k, row in zip(probe_jobs, probs):
            parsed = parsed_of[k]
            run.results[k] = self._order_from_probs(jobs[k][1], row, letter=parsed.verdict,
                                                    raw=gens[k].text, analysis=parsed.analysis,
                                                    forced=parsed.forced)

    def _choice_probs(self, prompts: Sequence[ChatPrompt], job_ids: list[int],
                      run: "_Run") -> np.ndarray:
        """Raw P(A), P(B) per prompt. ``choice_probs`` returns no token counts, so the prompt
        tokens it read come from the backend's ``usage`` counter (when it keeps one), shared
        evenly over the jobs of the call."""
        before = _prompt_tokens_seen(self.backend)
        probs = np.asarray(self.backend.choice_probs(prompts, VERDICT_CHOICES), dtype=float)
        run.calls += 1
        after = _prompt_tokens_seen(self.backend)
        if probs.shape != (len(prompts), len(VERDICT_CHOICES)):
            raise BackendError(f"{self.backend!r}.choice_probs returned shape {probs.shape}, "
                               f"expected {(len(prompts), len(VERDICT_CHOICES))}")
        if before is not None and after is not None:
            for k in job_ids:
                run.probe_tokens[k] += (after - before) / len(job_ids)
        return probs

    @staticmethod
    def _order_from_probs(order: Order, row, *, letter: str | None, raw: str | None,
                          analysis: str | None = None, forced: bool = False) -> OrderResult:
        dist = verdict_distribution(row[0], row[1])
        if dist is None:
            return OrderResult(order=order, p_a=None, verdict=None, valid=False, raw=raw,
                               error=NO_VERDICT_MASS, analysis=analysis,
                               mass=float(row[0] + row[1]), forced=forced)
        # Verdict-only mode and forced verdicts have no written letter: the judge's choice is
        # its more likely letter.
        verdict = letter if letter is not None else verdict_of(dist.p_a)
        return OrderResult(order=order, p_a=dist.p_a, verdict=verdict, valid=True, raw=raw,
                           analysis=analysis, mass=dist.mass, forced=forced)

    @staticmethod
    def _combine(results: tuple[OrderResult, ...], cost: Cost) -> Judgment:
        ab = results[0]
        bad = [r for r in results if not r.valid]
        if bad:
            error = "; ".join(f"order {r.order}: {r.error}" for r in bad)
            return invalid_judgment(error, orders=results, raw=ab.raw, cost=cost)
        if len(results) == 1:
            return Judgment(p_a=ab.p_a, verdict=ab.verdict, entropy=binary_entropy(ab.p_a),
                            analysis=ab.analysis, raw=ab.raw, orders=results, cost=cost)
        ba = results[1]
        p_a = swap_debias(ab.p_a, ba.p_a)
        # In order BA slot A holds the original B: map its letter back to the original names.
        winner_ab = ab.verdict
        winner_ba = _OTHER[ba.verdict] if ba.verdict is not None else None
        flipped = None if winner_ab is None or winner_ba is None else winner_ab != winner_ba
        return Judgment(p_a=p_a, verdict=verdict_of(p_a), entropy=binary_entropy(p_a),
                        analysis=ab.analysis, raw=ab.raw, orders=results, flipped=flipped,
                        cost=cost)

    def close(self) -> None:
        self.backend.close()


def verdict_probe(prompt: ChatPrompt, reply: str,
                  force: bool = False) -> tuple[ParsedJudgment, ChatPrompt | None]:
    """Parse prefill + reply as one judgment; for a valid one, also the probe where ``p(A)`` is
    read: the judge prompt with the assistant turn up to and including the final ``<verdict>``.

    With ``force``, a reply that wrote an analysis but no verdict is closed at the verdict
    position (:func:`~quillrl.judges.parse.close_for_verdict`): the parsed judgment is valid,
    ``forced``, and has no written ``verdict`` (the caller reads it from ``p(A)``).

    ``prompt.assistant_prefix`` is the reasoning prefill the reply continues. A reply that
    itself opens with ``<analysis>`` comes from a backend that could not continue the prefill
    (a server without ``continue_final_message`` that started a new turn): it is read alone,
    and so is its probe. Used by :class:`GenRMJudge` and the GenRM GRPO reward, so both read a
    judgment the same way.

    >>> parsed, probe = verdict_probe(ChatPrompt((), "<analysis>\\nCoherence:"),
    ...                               " A flows.\\n</analysis>\\n<verdict>A</verdict>")
    >>> parsed.verdict, probe.assistant_prefix[-10:]
    ('A', '\\n<verdict>')
    >>> verdict_probe(ChatPrompt((), "<analysis>\\nCoherence:"), " A flows")[0].error
    'truncated: <analysis> is never closed'
    >>> parsed, probe = verdict_probe(ChatPrompt((), "<analysis>\\nCoherence:"), " A flows", force=True)
    >>> parsed.forced, parsed.verdict, probe.assistant_prefix
    (True, None, '<analysis>\\nCoherence: A flows\\n</analysis>\\n<verdict>')
    """
    restated = prompt.assistant_prefix.startswith(ANALYSIS_OPEN) and reply.lstrip().startswith(ANALYSIS_OPEN)
    # an empty continuation is "empty output", not a truncated prefill
    text = reply if restated or not reply.strip() else prompt.assistant_prefix + reply
    parsed = parse_judgment(text)
    if not parsed.valid:
        closed = close_for_verdict(text, parsed.error) if force else None
        if closed is None:
            return parsed, None
        parsed = ParsedJudgment(verdict=None, analysis=parse_judgment(closed + "A" + VERDICT_CLOSE).analysis,
                                valid=True, verdict_pos=len(closed), forced=True)
        return parsed, ChatPrompt(prompt.messages, closed)
    return parsed, ChatPrompt(prompt.messages, text[: parsed.verdict_pos])


def error_kind(error: str | None) -> str:
    """The kind of a failed judgment's error, for counting: the first order's parser message
    without its details ("order BA: truncated: <analysis> is never closed" -> "truncated").

    >>> error_kind("order AB: verdict must be exactly 'A' or 'B', got 'x'; order BA: empty output")
    "verdict must be exactly 'A' or 'B'"
    """
    first = (error or "unknown").split("; ")[0]
    first = first.split(": ", 1)[1] if first.startswith("order ") and ": " in first else first
    return first.split(": ")[0].split(", got")[0]


def _prompt_tokens_seen(backend: Backend) -> int | None:
    usage = getattr(backend, "usage", None)
    return getattr(usage, "prompt_tokens", None)


def _with_stop(gen: Generation) -> str:
    """The reply with ``</verdict>`` put back where a server dropped the stop string."""
    if gen.finish_reason == "stop" and _UNCLOSED_VERDICT.search(gen.text.rstrip()):
        return gen.text.rstrip() + VERDICT_CLOSE
    return gen.text


def _probs_text(row) -> str:
    """Verdict-only mode's raw output: the two raw first-token probabilities, for audit."""
    return f"P(A)={float(row[0])!r} P(B)={float(row[1])!r}"
