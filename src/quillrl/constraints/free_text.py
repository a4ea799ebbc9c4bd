"""``free_text`` constraints: an instruction in words, judged by an LLM.

The rule checks cannot judge "make the ending bittersweet", so a ``free_text`` constraint asks a
``FreeTextChecker``: any object with ``check(response, instruction, prompt)``, such as
``quillrl.judges.FreeTextVerifier``, the LLM verifier. Without one the verdict is
``None`` with a reason, and the sample does not pass: an unjudged constraint is reported as
such, never counted as met.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

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
