"""What a constraint is (``Constraint``) and what checking one gives (``CheckResult``).

A ``Constraint`` is the data layer's :class:`~quillrl.data.records.ConstraintRecord` (id and
kwargs, shape only) validated against the registry, with its check built once. Building one
validates at once, and ``quillrl.constraints.read_tasks`` builds every task's as it reads the
file, so a bad task file fails when it is read, not halfway through training. Kept free of
heavy imports (no lm-eval, NLTK or torch): the registry loads the checks on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import PrivateAttr, ValidationError

from ..data.records import ConstraintRecord
from ..errors import ConstraintError


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict: ``passed`` is None when it could not be decided, and says why."""

    passed: bool | None
    reason: str


class Constraint(ConstraintRecord):
    """A constraint on a response: ``{"id": str, "kwargs": dict}``, validated, its check built.

    >>> Constraint(id="creative:word_range", kwargs={"max_words": 300}).id
    'creative:word_range'
    >>> Constraint(id="creative:wordrange")
    Traceback (most recent call last):
    ...
    quillrl.errors.ConstraintError: unknown constraint id 'creative:wordrange' (did you mean ...
    """

    # The validated, ready-to-run check, built once per constraint and reused for every response.
    _check: Any = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _constraint_error(exc) from None

    @classmethod
    def model_validate(cls, obj: Any, **options: Any) -> Constraint:
        # Called directly (not nested in another model), so a ConstraintError can stay one;
        # nested inside e.g. a task model, pydantic reports it as a ValidationError as usual.
        try:
            return super().model_validate(obj, **options)
        except ValidationError as exc:
            raise _constraint_error(exc) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes, **options: Any) -> Constraint:
        try:
            return super().model_validate_json(json_data, **options)
        except ValidationError as exc:
            raise _constraint_error(exc) from None

    def model_post_init(self, context: Any, /) -> None:
        from .registry import build_check  # the registry imports the checks; keep this module light

        self._check = build_check(self.id, self.kwargs)

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Constraint:
        # pydantic copies without validating; a changed id or kwargs needs a new, checked check.
        if update:
            return type(self).model_validate({**self.model_dump(), **update})
        return super().model_copy(deep=deep)

    @property
    def check(self):
        """The check this constraint runs (a ``quillrl.constraints.base.Check``)."""
        return self._check

    # __eq__ is the record's: by id and kwargs, never the private check objects, which differ
    # per instance. pydantic would make a frozen subclass hashable again; kwargs is a dict.
    __hash__ = None


def _constraint_error(exc: ValidationError) -> ConstraintError:
    """Our own error back out of pydantic's wrapper, or a plain one for a malformed constraint."""
    first = exc.errors()[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, ConstraintError):
        return cause
    if isinstance(cause, ValueError):  # the record's own message for a malformed constraint
        return ConstraintError(str(cause))
    where = ".".join(str(part) for part in first["loc"]) or "constraint"
    return ConstraintError(
        f"a constraint is {{'id': str, 'kwargs': dict}}; {where}: {first['msg']}")
