"""IFBench's 58 out-of-domain instructions (allenai/IFBench), checked to IFBench's semantics.

No IFBench package is on PyPI, so these are our own classes, one per instruction id, written
from IFBench's ``instructions.py`` and checked against its committed evaluation
(tests/test_ifbench_conformance.py). docs/design.md ("IFBench constraints") says how they
read kwargs and where their NLTK resources come from.
"""

from __future__ import annotations

from .base import IFBenchCheck
from .counts import COUNT_CHECKS
from .custom import CUSTOM_CHECKS
from .formats import FORMAT_CHECKS
from .words import WORD_CHECKS

IFBENCH_CHECKS: dict[str, type[IFBenchCheck]] = {
    cls.id: cls for cls in (*COUNT_CHECKS, *WORD_CHECKS, *FORMAT_CHECKS, *CUSTOM_CHECKS)}

__all__ = ["IFBENCH_CHECKS", "IFBenchCheck"]
