"""Constraint verification: does a response follow its task's constraints?

``verify(text, constraints, loose=False)`` checks IFEval's 25 instruction ids (with lm-eval's
reference checkers), IFBench's 58 (our classes, to IFBench's semantics), our ``creative:*`` ids,
and ``free_text`` instructions (with an LLM judge you pass in). Each verdict carries a one-line reason; ``None`` means undecided and fails.
``read_tasks(path)`` reads a task file with every constraint checked against the registry.

>>> v = verify("A short poem.", [Constraint(id="creative:word_range", kwargs={"min_words": 5})])
>>> v.passed, v.results[0].reason
(False, '3 words; at least 5 required')
"""

from .base import Arg, Check
from .free_text import FreeTextChecker, refuse_unjudged_free_text
from .registry import REGISTRY, check_class, constraint_family, constraint_ids
from .spec import CheckResult, Constraint
from .tasks import check_imported, checked_task, read_tasks
from .verifier import (ConstraintResult, VerdictCount, Verification, as_constraint, count_verdicts,
                       loose_variants, verify)

__all__ = [
    "Arg",
    "Check",
    "CheckResult",
    "Constraint",
    "ConstraintResult",
    "FreeTextChecker",
    "REGISTRY",
    "VerdictCount",
    "Verification",
    "as_constraint",
    "check_class",
    "check_imported",
    "checked_task",
    "constraint_family",
    "constraint_ids",
    "count_verdicts",
    "loose_variants",
    "read_tasks",
    "refuse_unjudged_free_text",
    "verify",
]
