"""``verify(text, constraints)``: every constraint's verdict on one response, strict or loose.

Strict and loose are IFEval's (``lm_eval.tasks.ifeval.utils.test_instruction_following_*``),
applied to every check, ours included:

- strict: a check passes iff the response is not blank and the check passes on it;
- loose: a check passes iff it passes on any non-blank one of 8 variants of the response: as
  is, without its first line, without its last line, without both, and each of those four with
  every ``*`` removed (markdown emphasis a model added around its answer).

A sample passes iff every constraint passes. A verdict of ``None`` (a check that raised, a
``free_text`` constraint with no LLM verifier) fails the sample and is counted in
``Verification.undecided``, never counted as met. ``free_text`` is judged once, on the response
as is, in both modes: eight LLM calls per constraint would cost more than the looser reading
is worth.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..data.records import ConstraintRecord
from .free_text import FreeTextCheck, FreeTextChecker
from .ifeval import IFEvalCheck
from .spec import CheckResult, Constraint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConstraintResult:
    """One constraint's verdict on one response."""

    id: str
    passed: bool | None
    reason: str


@dataclass(frozen=True)
class VerdictCount:
    """How a unit's verdicts count: ``passed`` iff every verdict is True, and ``undecided``, how
    many are None (no verdict), counted apart from real violations."""

    passed: bool
    undecided: int


def count_verdicts(verdicts: Iterable[bool | None]) -> VerdictCount:
    """The one rule for undecided constraints (docs/design.md, "Undecided constraints"): an
    undecided verdict does not pass, and it is counted. Training's pass flags and undecided
    count (``GroupRewards.check``) and every evaluation's (``verify``, ``eval
    constraints|winrate|policy``) come from here.

    >>> count_verdicts([True, None, True]), count_verdicts([])
    (VerdictCount(passed=False, undecided=1), VerdictCount(passed=True, undecided=0))
    """
    verdicts = list(verdicts)
    return VerdictCount(all(v is True for v in verdicts), sum(v is None for v in verdicts))


@dataclass(frozen=True)
class Verification:
    """All verdicts on one response; ``passed`` and ``undecided`` by :func:`count_verdicts`."""

    passed: bool
    results: tuple[ConstraintResult, ...]

    @property
    def undecided(self) -> int:
        """How many constraints got no verdict (``passed is None``)."""
        return count_verdicts(r.passed for r in self.results).undecided


def loose_variants(response: str) -> list[tuple[str, str]]:
    """IFEval's 8 loose variants of a response, labelled, in IFEval's order.

    >>> [label for label, _ in loose_variants("a")][:3]
    ['as is', 'without *', 'without first line']
    """
    lines = response.split("\n")
    first = "\n".join(lines[1:]).strip()
    last = "\n".join(lines[:-1]).strip()
    both = "\n".join(lines[1:-1]).strip()
    return [
        ("as is", response),
        ("without *", response.replace("*", "")),
        ("without first line", first),
        ("without last line", last),
        ("without first and last lines", both),
        ("without first line and *", first.replace("*", "")),
        ("without last line and *", last.replace("*", "")),
        ("without first and last lines and *", both.replace("*", "")),
    ]


def verify(text: str, constraints: Iterable[Constraint | ConstraintRecord | Mapping[str, Any]],
           loose: bool = False,
           *, free_text_verifier: FreeTextChecker | None = None,
           prompt: str | None = None) -> Verification:
    """Check ``text`` against every constraint.

    ``constraints`` are ``Constraint`` objects (validated once, reused), or a task's records or
    ``{"id", "kwargs"}`` dicts (validated on first sight, raising ``ConstraintError``, then kept
    built in a small cache). ``prompt`` is the task prompt, passed to checks that read it;
    ``free_text_verifier`` judges ``free_text`` constraints.

    >>> v = verify("Roses are red.\\nViolets are blue.",
    ...            [{"id": "creative:line_count", "kwargs": {"max_lines": 1}},
    ...             {"id": "punctuation:no_comma"}])
    >>> v.passed, [(r.id, r.passed, r.reason) for r in v.results][0]
    (False, ('creative:line_count', False, '2 lines; at most 1 allowed'))
    """
    built = [as_constraint(c) for c in constraints]
    variants: Sequence[tuple[str, str]] = (loose_variants(text) if loose else [("as is", text)])
    results = []
    for constraint in built:
        check = constraint.check
        if isinstance(check, FreeTextCheck):
            result = _free_text(check, text, prompt, free_text_verifier)
        else:
            result = _first_pass(check, variants, prompt)
        results.append(ConstraintResult(constraint.id, result.passed, result.reason))
    return Verification(count_verdicts(r.passed for r in results).passed, tuple(results))


# Dict constraints seen recently, validated and built once. A TRL reward function gets each
# sample's constraints as plain dicts on every call, and validating them anew each time costs
# more than the check itself for the cheap ids. Constraints are immutable, so sharing is safe.
_BUILT: dict[str, Constraint] = {}
_BUILT_MAX = 4096


def as_constraint(spec: Constraint | ConstraintRecord | Mapping[str, Any]) -> Constraint:
    """``spec`` validated: a Constraint as it is; a task's
    :class:`~quillrl.data.records.ConstraintRecord` or a ``{"id", "kwargs"}`` dict built once
    and shared while it is seen again (raises ConstraintError if it is bad)."""
    if isinstance(spec, Constraint):
        return spec
    if isinstance(spec, ConstraintRecord):
        spec = {"id": spec.id, "kwargs": spec.kwargs}
    try:
        key = repr(sorted(spec.items()))  # equal reprs of JSON-like data mean equal specs
    except (TypeError, AttributeError):  # malformed: let validation say what is wrong
        return Constraint.model_validate(spec)
    constraint = _BUILT.get(key)
    if constraint is None:
        constraint = Constraint.model_validate(spec)
        if len(_BUILT) >= _BUILT_MAX:
            _BUILT.clear()
        _BUILT[key] = constraint
    return constraint


def _free_text(check: FreeTextCheck, text: str, prompt: str | None,
               verifier: FreeTextChecker | None) -> CheckResult:
    if not text.strip():
        return CheckResult(False, "empty response")
    return check.check(text, prompt=prompt, verifier=verifier)


def _first_pass(check, variants: Sequence[tuple[str, str]], prompt: str | None) -> CheckResult:
    """The verdict on the first variant that passes; else an undecided one; else the failure."""
    failures = []
    # A variant equal to an earlier one (no '*' to remove, a one-line response) gets that
    # verdict again: checks are deterministic, so it is the same, and not computed twice.
    judged: dict[str, CheckResult] = {}
    for label, variant in variants:
        if variant in judged:
            result = judged[variant]
        elif not variant.strip():
            # IFEval's `response.strip() and check_following(...)`: blank is never a pass.
            result = CheckResult(False, "empty response")
        else:
            result = _run(check, variant, prompt)
        judged[variant] = result
        if result.passed:
            return result if label == "as is" else CheckResult(True, f"{result.reason} "
                                                                     f"(loose: {label})")
        failures.append(result)
    undecided = next((r for r in failures if r.passed is None), None)
    if undecided is not None:
        return undecided
    first = failures[0]  # the response as is
    if len(failures) == 1:
        return first
    return CheckResult(False, f"{first.reason} (and in all {len(failures) - 1} loose variants)")


def _run(check, text: str, prompt: str | None) -> CheckResult:
    if isinstance(check, IFEvalCheck):
        # Not caught here: a failure to set lm-eval up (import, punkt data) is not about this
        # response. IFEvalCheck turns an error inside lm-eval's check_following into None.
        return check.check(text, prompt=prompt)
    try:
        return check.check(text)
    except Exception as exc:  # a checker bug on odd input is an undecided verdict, not a crash
        log.warning("%s raised on a response: %r", check.id, exc)
        return CheckResult(None, f"check failed: {type(exc).__name__}: {exc}")
