"""``free_text`` constraints: an instruction in words, judged by an LLM.

The rule checks cannot judge "make the ending bittersweet", so a ``free_text`` constraint asks a
``FreeTextChecker``: any object with ``check(response, instruction, prompt)``, such as
``quillrl.judges.FreeTextVerifier``, the LLM verifier. Without one the verdict is
``None`` with a reason, and the sample does not pass: an unjudged constraint is reported as
such, never counted as met.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError
from .base import Arg, Check
from .spec import CheckResult

log = logging.getLogger(__name__)


@runtime_checkable
class FreeTextChecker(Protocol):
    """Judges whether ``response`` follows ``instruction`` (given the task ``prompt``, if any).

    Return ``CheckResult(True|False, reason)``, or ``CheckResult(None, reason)`` when the judge
    could not decide (no answer, a malformed one).
    """

    def check(self, response: str, instruction: str, prompt: str | None) -> CheckResult: ...


class FreeTextCheck(Check):
    """The response follows the instruction ``text``, as judged by a ``FreeTextChecker``."""

    id = "free_text"
    family = "free_text"
    args = (Arg("text", "str", note="the instruction, in words"),)

    def check(self, text: str, prompt: str | None = None,
              verifier: FreeTextChecker | None = None) -> CheckResult:
        instruction = self.kwargs["text"]
        if verifier is None:
            return CheckResult(None, "not judged: free_text needs an LLM verifier and none is "
                                     "configured (pass free_text_verifier=...)")
        try:
            result = verifier.check(text, instruction, prompt)
        except Exception as exc:  # a judge's failure is an undecided verdict, counted as such
            log.warning("free_text verifier failed on %r: %s", instruction, exc)
            return CheckResult(None, f"not judged: the verifier raised {type(exc).__name__}: {exc}")
        if not isinstance(result, CheckResult) or not (result.passed is None
                                                       or isinstance(result.passed, bool)):
            return CheckResult(None, f"not judged: the verifier returned {result!r}, "
                                     "not a CheckResult")
        return result


def refuse_unjudged_free_text(tasks: Iterable[Any], verifier: Any, *, source: object,
                              setting: str) -> None:
    """Refuse, before any work, tasks with a ``free_text`` constraint when no verifier is given
    (``verifier`` None): every such sample would be undecided, hence not passed (docs/design.md,
    "Undecided constraints"), so a pass rate, or RLMR's penalty, would measure the missing
    verifier, not the policy. ``train policy`` (``setting`` ``reward.free_text_verifier``) and
    ``eval constraints|winrate|policy`` (``--free-text-verifier``) refuse by this one rule.

    >>> from types import SimpleNamespace as T
    >>> refuse_unjudged_free_text([T(id="t", constraints=[T(id="free_text")])], None,
    ...                           source="tasks.jsonl", setting="--free-text-verifier")
    Traceback (most recent call last):
    quillrl.errors.ConfigError: tasks.jsonl: task 't' has a free_text constraint, and no verifier ...
    """
    if verifier is not None:
        return
    for task in tasks:
        if any(c.id == FreeTextCheck.id for c in task.constraints):
            raise ConfigError(f"{source}: task {task.id!r} has a free_text constraint, and no "
                              f"verifier is configured: set {setting} (e.g. "
                              "local:smollm2-135m-instruct) or remove such constraints")
