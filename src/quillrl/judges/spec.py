"""A judge spec string, parsed once into a typed, frozen :class:`JudgeSpec`.

The forms (module docstring of :mod:`quillrl.judges`)::

    genrm:<backend spec>      genrm:local:smollm2-135m-instruct, genrm:openai:http://h:8000/v1#m
    scalar:<path>             a Bradley-Terry reward model directory
    baseline:length
    baseline:random[:seed]

This is the one place a spec's text is taken apart: :func:`~quillrl.judges.make_judge`, config
validation (``reward.judge``) and the trainer's shared-weights test all read the fields. The
backend spec after ``genrm:`` is the backend's own grammar, parsed by
:class:`quillrl.backends.spec.BackendSpec` (once here, so a bad one fails when the spec is read).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..backends.spec import BackendSpec
from ..errors import ConfigError

JUDGE_SPECS = (
    "genrm:<backend spec> (e.g. genrm:local:smollm2-135m-instruct, "
    "genrm:openai:http://host:port/v1#model, "
    "genrm:vllm:<model>?dtype=float32&enforce_eager=1)",
    "scalar:<path to a num_labels=1 reward model directory>",
    "baseline:length",
    "baseline:random[:seed]",
)


def bad_spec(spec: str, why: str) -> ConfigError:
    forms = "\n  ".join(JUDGE_SPECS)
    return ConfigError(f"bad judge spec {spec!r}: {why}. Accepted forms:\n  {forms}")


@dataclass(frozen=True)
class JudgeSpec:
    """What a judge spec names. ``text`` is the spec as written (it names the judge in reports).

    ``backend`` is the backend spec of a GenRM (``local:<model>``, ``vllm:<model>``,
    ``openai:<url>#<model>``); ``target`` is what the judge runs: the GenRM's model (name,
    directory or ``<url>#<model>``, empty for the backend's default; a vLLM backend's engine
    options, ``?key=value&...``, are checked and left out of it), the scalar model's
    directory, or the baseline's name; ``seed`` is ``baseline:random``'s.

    >>> JudgeSpec.parse("genrm:local:smollm2-135m-instruct")
    JudgeSpec(text='genrm:local:smollm2-135m-instruct', kind='genrm', backend='local:smollm2-135m-instruct', target='smollm2-135m-instruct', seed=0)
    >>> JudgeSpec.parse("genrm:vllm:smollm2-135m-instruct?dtype=float32").target
    'smollm2-135m-instruct'
    >>> JudgeSpec.parse("baseline:random:7").seed
    7
    >>> JudgeSpec.parse("genrm")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    quillrl.errors.ConfigError: bad judge spec 'genrm': genrm needs a backend spec after 'genrm:'...
    """

    text: str
    kind: Literal["genrm", "scalar", "baseline"]
    backend: str = ""
    target: str = ""
    seed: int = 0

    @classmethod
    def parse(cls, spec: str | JudgeSpec) -> JudgeSpec:
        """The spec's fields, or a ConfigError that lists the accepted forms. Nothing is loaded."""
        if isinstance(spec, JudgeSpec):
            return spec
        if not isinstance(spec, str):
            raise ConfigError(f"a judge spec must be a string, not {type(spec).__name__}")
        kind, _, rest = spec.partition(":")
        if kind == "genrm":
            if not rest:
                raise bad_spec(spec, "genrm needs a backend spec after 'genrm:'")
            backend = BackendSpec.parse(rest)  # checked here: a vLLM engine's options too
            target = rest.partition(":")[2] if backend.kind == "openai" else backend.model
            return cls(spec, "genrm", backend=rest, target=target)
        if kind == "scalar":
            if not rest:
                raise bad_spec(spec, "scalar needs a model directory after 'scalar:'")
            return cls(spec, "scalar", target=rest)
        if kind == "baseline":
            name, _, arg = rest.partition(":")
            if name == "length" and not arg:
                return cls(spec, "baseline", target="length")
            if name == "random":
                try:
                    return cls(spec, "baseline", target="random", seed=int(arg) if arg else 0)
                except ValueError:
                    raise bad_spec(spec, f"the random seed must be an integer, got {arg!r}") from None
            raise bad_spec(spec, f"unknown baseline {rest!r}")
        raise bad_spec(spec, f"unknown judge kind {kind!r}")

    @property
    def backend_spec(self) -> BackendSpec | None:
        """A GenRM's backend spec, parsed (None for other judges)."""
        return BackendSpec.parse(self.backend) if self.kind == "genrm" else None

    @property
    def backend_kind(self) -> str:
        """A GenRM's backend: ``local``, ``vllm`` or ``openai`` (empty for other judges)."""
        return self.backend_spec.kind if self.kind == "genrm" else ""

    def __str__(self) -> str:
        return self.text
