"""What a constraint is (``Constraint``) and what checking one gives (``CheckResult``).

Kept free of heavy imports (no lm-eval, NLTK or torch) so ``quillrl.data`` can import it for
every task line it reads. Building a ``Constraint`` validates its id and kwargs against the
registry at once, so a bad task file fails when it is read, not halfway through training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from ..errors import ConstraintError


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict: ``passed`` is None when it could not be decided, and says why."""

    passed: bool | None
    reason: str


class Constraint(BaseModel):
    """A constraint on a response: ``{"id": str, "kwargs": dict}``.

    >>> Constraint(id="creative:word_range", kwargs={"max_words": 300}).id
    'creative:word_range'
    >>> Constraint(id="creative:wordrange")
    Traceback (most recent call last):
    ...
    quillrl.errors.ConstraintError: unknown constraint id 'creative:wordrange' (did you mean ...
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    kwargs: dict[str, Any] = Field(default_factory=dict)

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

    def __eq__(self, other: object) -> bool:
        # pydantic would also compare the private check objects, which differ per instance.
        if not isinstance(other, Constraint):
            return NotImplemented
        return (self.id, self.kwargs) == (other.id, other.kwargs)

    __hash__ = None  # kwargs is a dict, so a Constraint cannot be hashed


def _constraint_error(exc: ValidationError) -> ConstraintError:
    """Our own error back out of pydantic's wrapper, or a plain one for a malformed constraint."""
    first = exc.errors()[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, ConstraintError):
        return cause
    where = ".".join(str(part) for part in first["loc"]) or "constraint"
    return ConstraintError(
        f"a constraint is {{'id': str, 'kwargs': dict}}; {where}: {first['msg']}")
