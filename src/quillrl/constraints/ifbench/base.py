"""What every IFBench check shares: the family, kwargs as IFBench's data writes them, reasons.

IFBench's data writes counts as floats (``"N": 2.0``); an ``Arg`` of type ``"number"`` takes
them as they are. IFBench fills a missing or negative kwarg with a *random* value; we refuse
both instead (every arg is required, numbers have a minimum), so a verdict never depends on a
draw. ``None``-valued kwargs are dropped first, as IFBench's evaluation does.
"""

from __future__ import annotations

from ..base import Arg, Check
from ..spec import CheckResult


def count_arg(name: str, minimum: int = 0, note: str = "") -> Arg:
    """A count or threshold (int, or a float such as IFBench's 2.0)."""
    return Arg(name, "number", minimum=minimum, note=note)


def text_arg(name: str, note: str = "") -> Arg:
    return Arg(name, "str", note=note)


def show(number: float) -> str:
    """A kwarg number as a person writes it: 2.0 -> '2', 2.5 -> '2.5'."""
    return str(int(number)) if float(number).is_integer() else str(number)


class IFBenchCheck(Check):
    """One IFBench instruction; subclasses set ``id``, ``args`` and ``check``."""

    family = "ifbench"

    @staticmethod
    def result(passed: bool, detail: str) -> CheckResult:
        """A verdict whose reason starts with what was found (``detail``)."""
        return CheckResult(bool(passed), detail)
