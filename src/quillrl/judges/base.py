"""The one interface every pairwise judge implements, and the result it returns.

A judge answers "which of two responses to this prompt is better?" with a probability:
``compare(prompt, a, b) -> Judgment`` where ``Judgment.p_a`` is ``p(A ≻ B)``. Judges differ in
where that probability comes from (a generative reward model's verdict token, a scalar reward
model's scores, a word count, a coin), never in what they return, so evaluation and reward code
takes any judge.

A task or pair may carry a *principle* (free text, a rubric, or both, rendered into one text by
:func:`quillrl.data.render_principle`): ``compare(prompt, a, b, principle=...)``, or a fourth
element of a ``compare_many`` item. A judge that reads it sets :attr:`Judge.reads_principle`
(the GenRM puts it in its template); the others (length, random, a scalar reward model) are
handed ``(prompt, a, b)`` as before, and a principle given to them is logged once as ignored.

A judgment that failed (unparseable output, no verdict mass) has ``valid=False`` and
``p_a=None``: callers count it and never read it as a score. Every judgment keeps what it was
computed from (``raw``, ``orders``) and what it cost.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
import logging
from typing import ClassVar, Literal, NamedTuple, Sequence

from .stats import binary_entropy, verdict_of

log = logging.getLogger(__name__)

Verdict = Literal["A", "B"]
Order = Literal["AB", "BA"]


class Pair(NamedTuple):
    """One comparison: the writing prompt, candidate A, candidate B, and the principle the
    judge is conditioned on (None: none). ``compare_many`` takes ``(prompt, a, b)`` or
    ``(prompt, a, b, principle)`` tuples."""

    prompt: str
    a: str
    b: str
    principle: str | None = None


@dataclass(frozen=True)
class Cost:
    """What one judgment cost.

    Token counts are the judgment's own. ``seconds`` and ``backend_calls`` are its share of the
    batched calls that produced it (a batch of n judgments served by 2 backend calls gives each
    ``2 / n`` calls), so summing over a batch gives the batch's totals. Prompt tokens read by
    ``choice_probs`` (which returns no counts) come from the backend's ``usage`` counter and are
    shared evenly too.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    backend_calls: float = 0.0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.seconds + other.seconds,
            self.backend_calls + other.backend_calls,
        )


@dataclass
class OrderResult:
    """The judge's answer for one presentation order of a pair.

    In order ``"BA"`` the slot called A holds the original candidate B, so ``p_a`` and
    ``verdict`` here are about *slots*, exactly as the judge saw them.
    """

    order: Order
    p_a: float | None  # p(slot A) renormalised over {A, B}
    verdict: Verdict | None  # the slot letter the judge wrote (reasoning) or favours (verdict mode)
    valid: bool
    error: str | None = None
    raw: str | None = None  # the judge's output text exactly as the backend returned it
    analysis: str | None = None
    mass: float | None = None  # P(A) + P(B) before renormalising: how much the judge meant a verdict
    forced: bool = False  # the verdict was read at a position we closed (force_verdict), not written


@dataclass
class Judgment:
    """``p(A ≻ B)`` for one pair, with its audit trail.

    ``verdict`` is ``"A"``/``"B"`` for the winner among the *original* candidates, ``None`` for
    an exact tie (``p_a == 0.5``, e.g. equal lengths) or an invalid judgment. Without swap it is
    the letter the judge wrote; with swap it follows the debiased ``p_a``. ``flipped`` is set
    only for swapped valid pairs: ``True`` when the two orders crown different candidates.
    """

    p_a: float | None
    verdict: Verdict | None
    entropy: float | None
    analysis: str | None = None
    raw: str | None = None
    valid: bool = True
    error: str | None = None
    orders: tuple[OrderResult, ...] = ()
    flipped: bool | None = None
    cost: Cost = field(default_factory=Cost)
    extra: dict = field(default_factory=dict)

    @property
    def forced(self) -> bool:
        """True when any order's verdict was forced (read where we closed the analysis)."""
        return any(r.forced for r in self.orders)

    def to_dict(self) -> dict:
        """A JSON-ready dict (for ``--out`` JSONL files)."""
        return asdict(self)


def scored_judgment(p_a: float, *, raw: str | None = None, cost: Cost | None = None,
                    extra: dict | None = None) -> Judgment:
    """A valid single-order judgment from ``p(A ≻ B)``: verdict and entropy follow from ``p_a``."""
    return Judgment(p_a=p_a, verdict=verdict_of(p_a), entropy=binary_entropy(p_a), raw=raw,
                    orders=(), cost=cost or Cost(), extra=extra or {})


def invalid_judgment(error: str, *, orders: tuple[OrderResult, ...] = (), raw: str | None = None,
                     cost: Cost | None = None) -> Judgment:
    """A failed judgment: no probability, no verdict, the reason in ``error``."""
    return Judgment(p_a=None, verdict=None, entropy=None, raw=raw, valid=False, error=error,
                    orders=orders, cost=cost or Cost())


@dataclass
class JudgeUsage:
    """Running totals over every ``compare_many`` call of one judge: how many, how many
    invalid (counted, never scored), and what they cost."""

    judgments: int = 0
    invalid: int = 0
    cost: Cost = field(default_factory=Cost)

    def record(self, judgments: Sequence[Judgment]) -> None:
        for j in judgments:
            self.judgments += 1
            self.invalid += not j.valid
            self.cost = self.cost + j.cost

    @property
    def invalid_rate(self) -> float | None:
        return self.invalid / self.judgments if self.judgments else None


class Judge(ABC):
    """Pairwise judge: ``compare`` one pair or ``compare_many`` in as few backend calls as it can.

    Subclasses implement ``_compare_many``; the public methods validate input and keep
    :attr:`usage` up to date.
    """

    name: str = "judge"
    # True for a judge whose answer depends on the principle; the others get (prompt, a, b).
    reads_principle: ClassVar[bool] = False

    @property
    def usage(self) -> JudgeUsage:
        if "_usage" not in self.__dict__:
            self._usage = JudgeUsage()
        return self._usage

    def compare(self, prompt: str, a: str, b: str, principle: str | None = None) -> Judgment:
        """``p(A ≻ B)`` for one pair, by ``principle`` when given."""
        return self.compare_many([Pair(prompt, a, b, principle)])[0]

    def compare_many(self, items: Sequence[tuple]) -> list[Judgment]:
        """One :class:`Judgment` per ``(prompt, a, b)`` or ``(prompt, a, b, principle)``, in order."""
        pairs = check_pairs(items)
        if not self.reads_principle:
            if any(p.principle for p in pairs) and not self.__dict__.get("_warned_principle"):
                self._warned_principle = True
                log.warning("%s does not read principles; judging without them", self.name)
            pairs = [p[:3] for p in pairs]  # type: ignore[misc]
        out = self._compare_many(pairs) if pairs else []
        self.usage.record(out)
        return out

    @abstractmethod
    def _compare_many(self, pairs: list[Pair]) -> list[Judgment]:
        """Judge a non-empty, validated list of pairs: :class:`Pair` s when the judge
        ``reads_principle``, else plain ``(prompt, a, b)`` tuples."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the judge holds (a backend, a model)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def check_pairs(items: Sequence[tuple]) -> list[Pair]:
    """Validate ``compare_many`` input early, with a message that says what is expected; a blank
    principle is no principle.

    >>> check_pairs([("p", "a", "b"), ("p", "a", "b", "Be brief.")])
    [Pair(prompt='p', a='a', b='b', principle=None), Pair(prompt='p', a='a', b='b', principle='Be brief.')]
    """
    out = []
    for i, item in enumerate(items):
        if not (isinstance(item, (tuple, list)) and len(item) in (3, 4)
                and all(isinstance(x, str) for x in item[:3])
                and (len(item) == 3 or item[3] is None or isinstance(item[3], str))):
            raise TypeError(f"compare_many item {i} must be a (prompt, a, b) tuple of strings, "
                            f"or (prompt, a, b, principle) with a str or None principle, "
                            f"got {type(item).__name__}")
        principle = item[3] if len(item) == 4 and item[3] and item[3].strip() else None
        out.append(Pair(item[0], item[1], item[2], principle))
    return out
