"""Typed records for the three kinds of line quillrl reads: tasks, preference pairs, responses.

Unknown fields are kept (``extra="allow"``) and written back, because users carry their own
metadata through the pipeline. Optional fields left at ``None`` are not written, so a file that
never had them round-trips unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")

    # Declared optional fields dropped from the output when None (extras are never dropped).
    _omit_if_none: ClassVar[tuple[str, ...]] = ()

    def to_json_dict(self) -> dict[str, Any]:
        """The record as written to JSONL: declared fields first, then the extra ones."""
        data = self.model_dump(mode="json")
        for name in self._omit_if_none:
            if data.get(name) is None:
                data.pop(name, None)
        return data


class ConstraintRecord(BaseModel):
    """A constraint as a task holds it: ``{"id": str, "kwargs": dict}``, checked for shape only.

    Whether the id names a check and the kwargs fit it is the constraint registry's to say, one
    layer up (docs/design.md, "Layout"): :class:`quillrl.constraints.Constraint` is this record,
    validated and with its check built, and ``quillrl.constraints.read_tasks`` turns every task's
    records into those as it reads the file, naming file, line and field for a bad one.

    >>> ConstraintRecord(id="creative:word_range", kwargs={"max_words": 300}).kwargs
    {'max_words': 300}
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _one_message(cls, value: Any, handler):
        # A malformed constraint is one problem ("a constraint is ...; id: Field required")
        # reported at the constraint, not at its inner field; a validator's own error (the
        # registry's, in the Constraint subclass) goes up as it was raised.
        try:
            return handler(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            cause = (first.get("ctx") or {}).get("error")
            if isinstance(cause, ValueError):
                raise cause from None
            where = ".".join(str(part) for part in first["loc"]) or "constraint"
            raise ValueError(f"a constraint is {{'id': str, 'kwargs': dict}}; {where}: "
                             f"{first['msg']}") from None

    def __eq__(self, other: object) -> bool:
        # the same constraint whether or not it has been validated into a Constraint
        if not isinstance(other, ConstraintRecord):
            return NotImplemented
        return (self.id, self.kwargs) == (other.id, other.kwargs)

    __hash__ = None  # kwargs is a dict, so a constraint cannot be hashed


class Criterion(BaseModel):
    """One criterion of a rubric: a short ``name`` and what it asks (``description``).

    WritingBench's criteria also grade five score bands (``"1-2"`` ... ``"9-10"``) for a
    pointwise 1-10 score; a pairwise judge gives no such score, so importers keep the name and
    the description only.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str = Field(min_length=1)

    @field_validator("name", "description")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


def render_principle(principle: str | None, criteria: list[Criterion] | None) -> str | None:
    """The one text a judge is conditioned on, from a record's ``principle`` and ``criteria``:
    the principle, then the criteria as a numbered list; None when the record has neither.

    Every path that judges a task or a pair (``judge``, ``distill``, ``train genrm-sft|genrm-grpo``,
    ``train policy``, ``serve-reward``, ``eval``) renders it here and hands the text to
    :func:`quillrl.judges.template.judge_prompt` (docs/design.md, "Principles and rubrics").

    >>> print(render_principle("Reward restraint.", [Criterion(name="Pacing", description="Scenes breathe.")]))
    Reward restraint.
    <BLANKLINE>
    Criteria:
    1. Pacing: Scenes breathe.
    >>> render_principle(None, None) is None
    True
    """
    parts = [principle.strip()] if principle and principle.strip() else []
    if criteria:
        parts.append("Criteria:\n" + "\n".join(f"{i}. {c.name.strip()}: {c.description.strip()}"
                                                for i, c in enumerate(criteria, start=1)))
    return "\n\n".join(parts) or None


class _Principled(_Record):
    """A record a judge may be conditioned on: a free-text ``principle``, a rubric of
    ``criteria``, both, or neither (the judge's five story dimensions alone). Subclasses
    declare the two fields after their own, so files keep ``id`` and ``prompt`` first."""

    @field_validator("principle", check_fields=False)
    @classmethod
    def _principle_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("is blank; leave 'principle' out for none")
        return value

    @field_validator("criteria", check_fields=False)
    @classmethod
    def _criteria_named_once(cls, value: list[Criterion] | None) -> list[Criterion] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("is an empty list; leave 'criteria' out for none")
        names = [c.name.strip() for c in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"names a criterion more than once: {', '.join(repeated)}")
        return value

    def judge_principle(self) -> str | None:
        """The principle text the judge sees (:func:`render_principle`), or None."""
        return render_principle(self.principle, self.criteria)


class WritingTask(_Principled):
    """A prompt to write for, with the constraints a response must meet.

    ``reference`` is an optional reference text (a human draft), used by the ``reference``
    pairwise reward strategy. ``principle`` and ``criteria`` (a rubric) condition the judge of
    its responses (:meth:`judge_principle`).
    """

    id: str = Field(min_length=1)
    prompt: str
    # Optional on input: a task with no constraints is a plain writing prompt (EQ-Bench).
    # Checked for shape here; against the check registry by quillrl.constraints.read_tasks.
    constraints: list[ConstraintRecord] = Field(default_factory=list)
    reference: str | None = None
    principle: str | None = None
    criteria: list[Criterion] | None = None

    _omit_if_none: ClassVar[tuple[str, ...]] = ("reference", "principle", "criteria")

    def messages(self) -> list[dict[str, str]]:
        """The chat a policy answers: the task prompt as the one user turn.

        The single place a task becomes a policy prompt: ``train policy`` hands it to TRL and
        ``quillrl generate`` to a backend, and both render it with the model's chat template and
        its generation prompt, so training and evaluation cannot drift apart (docs/design.md,
        "Generation and IFEval").
        """
        return [{"role": "user", "content": self.prompt}]


class PreferencePair(_Principled):
    """Two responses to one prompt, ``chosen`` preferred over ``rejected``; with a
    ``principle`` or ``criteria``, preferred under that standard, and judged with it."""

    id: str = Field(min_length=1)
    prompt: str
    chosen: str
    rejected: str
    rationale: str | None = None
    source: str | None = None
    principle: str | None = None
    criteria: list[Criterion] | None = None

    _omit_if_none: ClassVar[tuple[str, ...]] = ("rationale", "source", "principle", "criteria")


class Response(_Record):
    """A model's response to a task, matched to it by ``id`` or, failing that, by ``prompt``.

    IFEval's response files carry only ``prompt``; files we write carry ``id`` (or ``key``,
    which the reader turns into ``id``). ``quillrl generate`` also writes which sample of the
    task this is, the model, why generation ended (``stop`` or ``length``: clipped at the token
    limit), the tokens generated and the sampling settings, on every line.
    """

    id: str | None = Field(default=None, min_length=1)
    prompt: str | None = None
    response: str
    sample: int | None = Field(default=None, ge=0)
    model: str | None = None
    finish_reason: str | None = None
    tokens: int | None = Field(default=None, ge=0)
    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_new_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None

    _omit_if_none: ClassVar[tuple[str, ...]] = (
        "id", "prompt", "sample", "model", "finish_reason", "tokens", "temperature", "top_p",
        "max_new_tokens", "seed")

    @model_validator(mode="after")
    def _needs_a_key(self) -> Response:
        if self.id is None and self.prompt is None:
            raise ValueError("a response needs 'id' (or 'key') or 'prompt' to match its task")
        return self


class JudgmentRecord(_Record):
    """One judged pair as ``quillrl judge`` and ``eval alignment --out`` write it
    (``quillrl.eval.judging.judgment_record``); only the fields scoring reads are checked here,
    the others (raw outputs, per-order answers) are kept as written.

    ``p_chosen`` is a probability in [0, 1], or null for an invalid judgment; a number outside
    that range or a string is a bad line, since it would score as a confident verdict.
    """

    id: str = Field(min_length=1)
    judge: str = Field(min_length=1)
    mode: str | None = None
    swap: bool = Field(strict=True)
    order_seed: int = Field(strict=True)
    p_chosen: float | None = Field(strict=True, ge=0.0, le=1.0)
    flipped: bool | None = Field(default=None, strict=True)
    valid: bool = Field(strict=True)
    cost: dict[str, float]
    force_verdict: bool = Field(default=False, strict=True)  # files from before it existed: False

    def setting(self) -> tuple:
        """What identifies one judge's run: (judge, mode, swap, order seed, force_verdict)."""
        return (self.judge, self.mode, self.swap, self.order_seed, self.force_verdict)
