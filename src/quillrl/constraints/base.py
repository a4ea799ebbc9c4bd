"""The shape every check shares: declared kwargs (``Arg``), validation, and ``check(text)``.

A check class declares its kwargs once; ``Check.validate`` turns them into a clean dict or raises
``ConstraintError`` naming the problem *and* every kwarg the id accepts with its type, so one
message is enough to fix the constraint.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ConstraintError
from .spec import CheckResult

_TYPES = ("int", "number", "str", "str list", "int list")


@dataclass(frozen=True)
class Arg:
    """One keyword argument of a check: its name, type, and what values it takes."""

    name: str
    type: str  # one of _TYPES
    required: bool = True
    minimum: int | None = None  # for "int", "number" and "int list"
    choices: tuple[str, ...] = ()  # for "str": the only values allowed
    note: str = ""  # shown in error messages, e.g. why a minimum exists

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"Arg type must be one of {_TYPES}, got {self.type!r}")

    def describe(self) -> str:
        """``name (type; limits; note)``, as error messages list it.

        >>> Arg("max_words", "int", required=False, minimum=0).describe()
        'max_words (int >= 0; optional)'
        """
        kind = " | ".join(repr(c) for c in self.choices) if self.choices else self.type
        if self.minimum is not None:
            kind += (f", each >= {self.minimum}" if self.type == "int list"
                     else f" >= {self.minimum}")
        details = [kind] + ([] if self.required else ["optional"]) + ([self.note] if self.note
                                                                     else [])
        return f"{self.name} ({'; '.join(details)})"

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this arg, or None when it is fine."""
        if self.type in ("int", "number", "str"):
            if not _is(value, self.type):
                return f"expected {self.type}, got {type(value).__name__} {value!r}"
            items = [value]
        else:
            element = self.type.split()[0]
            if not isinstance(value, list) or not value:
                return f"expected a non-empty list of {element}, got {value!r}"
            if not all(_is(v, element) for v in value):
                return f"expected a list of {element}, got {value!r}"
            items = value
        for item in items:
            if isinstance(item, str) and not item.strip():
                return "must not be empty"
            if self.minimum is not None and not isinstance(item, str) and item < self.minimum:
                return f"must be >= {self.minimum}, got {item}"
            if self.choices and item not in self.choices:
                return f"must be one of {', '.join(map(repr, self.choices))}, got {item!r}"
        return None


def _is(value: Any, type_name: str) -> bool:
    if type_name == "int":  # bool is an int in Python but never a count
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "number":  # an int or a finite float (IFBench's data writes counts as 2.0)
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value))
    return isinstance(value, str)


class Check(ABC):
    """A rule a response must follow. Subclasses set ``id`` and ``args`` and define ``check``.

    ``kwargs`` is validated on construction; ``check(text)`` never raises for any string.
    """

    id: ClassVar[str]
    # which kind of rule this is, for pass rates per family (``constraint_family``): "ifeval",
    # "creative", "free_text"; a new set of ids sets its own
    family: ClassVar[str]
    args: ClassVar[tuple[Arg, ...]] = ()

    def __init__(self, kwargs: Mapping[str, Any] | None = None) -> None:
        self.kwargs = self.validate(kwargs or {})

    @classmethod
    def accepted(cls) -> str:
        """The kwargs this id accepts, for error messages."""
        if not cls.args:
            return "it takes no kwargs"
        return "it takes kwargs " + ", ".join(arg.describe() for arg in cls.args)

    @classmethod
    def validate(cls, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Clean kwargs (``None`` values dropped, as IFEval files use them for "unset")."""
        if not isinstance(kwargs, Mapping):
            raise cls.error(f"kwargs must be a dict, got {type(kwargs).__name__}")
        given = {k: v for k, v in kwargs.items() if v is not None}
        known = {arg.name: arg for arg in cls.args}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise cls.error(f"unknown kwarg{'s' if len(unknown) > 1 else ''} "
                            + ", ".join(map(repr, unknown)))
        for arg in cls.args:
            if arg.name not in given:
                if arg.required:
                    raise cls.error(f"missing kwarg {arg.name!r}")
                continue
            problem = arg.problem(given[arg.name])
            if problem:
                raise cls.error(f"kwarg {arg.name!r} {problem}")
        cls.validate_together(given)
        return given

    @classmethod
    def validate_together(cls, kwargs: dict[str, Any]) -> None:
        """Rules that tie several kwargs together (``min <= max``); raise ``cls.error``."""

    @classmethod
    def error(cls, message: str) -> ConstraintError:
        return ConstraintError(f"{cls.id}: {message}; {cls.accepted()}")

    @abstractmethod
    def check(self, text: str) -> CheckResult:
        """The verdict on one non-empty response, with a one-line reason."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kwargs!r})"

    def __reduce__(self):
        # Pickle as (id, kwargs) and rebuild through the registry: the IFEval classes are made
        # per id at import time, and a built lm-eval checker need not travel between processes.
        from .registry import build_check

        return build_check, (self.id, self.kwargs)
