"""The explicit registry: every constraint id quillrl checks, and the class that checks it.

Four families: IFEval's 25 ids (lm-eval's reference checkers), IFBench's 58 ids (our classes, to
IFBench's semantics), our ``creative:*`` ids, and ``free_text`` (an LLM judge); each check class
names its own (``Check.family``), and :func:`constraint_family` is how evaluation groups pass
rates. An unknown id is an error that names the closest id and lists all.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from ..errors import ConstraintError
from .base import Check
from .creative import CREATIVE_CHECKS
from .free_text import FreeTextCheck
from .ifbench import IFBENCH_CHECKS
from .ifeval import IFEVAL_CHECKS

REGISTRY: dict[str, type[Check]] = {
    **IFEVAL_CHECKS,
    **IFBENCH_CHECKS,
    **{cls.id: cls for cls in CREATIVE_CHECKS},
    FreeTextCheck.id: FreeTextCheck,
}


def constraint_ids() -> list[str]:
    """Every accepted constraint id, sorted."""
    return sorted(REGISTRY)


def check_class(constraint_id: str) -> type[Check]:
    """The class for ``constraint_id``, or a ConstraintError that lists the accepted ids."""
    cls = REGISTRY.get(constraint_id) if isinstance(constraint_id, str) else None
    if cls is None:
        close = difflib.get_close_matches(str(constraint_id), REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConstraintError(f"unknown constraint id {constraint_id!r}{hint}; accepted ids: "
                              + ", ".join(constraint_ids()))
    return cls


def constraint_family(constraint_id: str) -> str:
    """The family of a constraint id (its check class's ``family``), for pass rates per family.

    >>> [constraint_family(i) for i in ("punctuation:no_comma", "creative:ends_with", "free_text")]
    ['ifeval', 'creative', 'free_text']
    """
    return check_class(constraint_id).family


def build_check(constraint_id: str, kwargs: Mapping[str, Any]) -> Check:
    """A ready check for one constraint; raises ConstraintError for a bad id or bad kwargs."""
    return check_class(constraint_id)(kwargs)
