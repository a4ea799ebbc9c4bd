"""Typed records for the three kinds of line quillrl reads: tasks, preference pairs, responses.

Unknown fields are kept (``extra="allow"``) and written back, because users carry their own
metadata through the pipeline. Optional fields left at ``None`` are not written, so a file that
never had them round-trips unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..constraints.spec import Constraint


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


class WritingTask(_Record):
    """A prompt to write for, with the constraints a response must meet.

    ``reference`` is an optional reference text (a human draft), used by the ``reference``
    pairwise reward strategy.
    """

    id: str = Field(min_length=1)
    prompt: str
    # Optional on input: a task with no constraints is a plain writing prompt (EQ-Bench).
    constraints: list[Constraint] = Field(default_factory=list)
    reference: str | None = None

    _omit_if_none: ClassVar[tuple[str, ...]] = ("reference",)

    def messages(self) -> list[dict[str, str]]:
        """The chat a policy answers: the task prompt as the one user turn.

        The single place a task becomes a policy prompt: ``train policy`` hands it to TRL and
        ``quillrl generate`` to a backend, and both render it with the model's chat template and
        its generation prompt, so training and evaluation cannot drift apart (docs/design.md,
        "Generation and IFEval").
        """
        return [{"role": "user", "content": self.prompt}]


class PreferencePair(_Record):
    """Two responses to one prompt, ``chosen`` preferred over ``rejected``."""

    id: str = Field(min_length=1)
    prompt: str
    chosen: str
    rejected: str
    rationale: str | None = None
    source: str | None = None

    _omit_if_none: ClassVar[tuple[str, ...]] = ("rationale", "source")


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
