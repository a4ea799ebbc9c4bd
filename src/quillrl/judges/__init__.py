"""Pairwise judges: which of two responses to a prompt is better, as ``p(A ≻ B)``.

Every judge has ``compare(prompt, a, b) -> Judgment`` and ``compare_many(items)``; build one
from a spec string with :func:`make_judge`::

    genrm:<backend spec>      a generative reward model, e.g. genrm:local:smollm2-135m-instruct
                              or genrm:openai:http://host:8000/v1#model
    scalar:<path>             a Bradley-Terry reward model directory (num_labels=1)
    baseline:length           the longer response in words wins, ties 0.5
    baseline:random[:seed]    p(A ≻ B) uniform, reproducible from the seed
"""

from __future__ import annotations

import inspect

from ..errors import ConfigError
from .base import Cost, Judge, Judgment, OrderResult
from .baselines import LengthJudge, RandomJudge
from .free_text import FreeTextResult, FreeTextVerifier
from .genrm import GenRMJudge
from .parse import ParsedJudgment, parse_judgment
from .scalar import ScalarRMJudge
from .spec import JudgeSpec, bad_spec
from .stats import binary_entropy, position_consistency, swap_debias
from .template import judge_prompt, neutralise

__all__ = [
    "Cost", "FreeTextResult", "FreeTextVerifier", "GenRMJudge", "Judge", "JudgeSpec", "Judgment",
    "LengthJudge", "OrderResult", "ParsedJudgment", "RandomJudge", "ScalarRMJudge",
    "binary_entropy", "check_judge_spec", "judge_prompt", "make_judge", "neutralise", "parse_judgment",
    "position_consistency", "swap_debias",
]

def _check_options(cls: type, spec: str, positional: tuple[str, ...], **options) -> None:
    """Reject unknown options with the list of accepted ones, before anything is loaded."""
    params = inspect.signature(cls).parameters
    unknown = sorted(set(options) - set(params))
    if unknown:
        accepted = ", ".join(p for p in params if p not in positional)
        raise ConfigError(f"judge spec {spec!r}: unknown option(s) {', '.join(unknown)}; "
                          f"{cls.__name__} accepts {accepted}")


def check_judge_spec(spec: str | JudgeSpec) -> JudgeSpec:
    """The parsed spec, or a ConfigError listing the accepted forms unless ``spec`` names a
    judge that :func:`make_judge` can build, checked without building it: no model is loaded or
    converted, no server is called. Verbs call it before they open any file."""
    parsed = JudgeSpec.parse(spec)
    if parsed.kind == "genrm":
        if parsed.backend_kind in ("local", "vllm"):
            _check_model_dir(parsed.text, parsed.target)
        else:  # an OpenAI-compatible client is only configured here; anything else is refused
            from ..backends import make_backend

            make_backend(parsed.backend).close()
    elif parsed.kind == "scalar":
        _check_model_dir(parsed.text, parsed.target)
    return parsed


def _check_model_dir(spec: str, model: str) -> None:
    from ..errors import ModelNotFoundError
    from ..models import EMBEDDED, resolve

    if model and model not in EMBEDDED:
        try:
            resolve(model)
        except ModelNotFoundError:
            raise bad_spec(spec, f"no model {model!r} (an embedded name, or a directory with "
                            "config.json or adapter_config.json)") from None


def make_judge(spec: str | JudgeSpec, *, mode: str = "reasoning", swap: bool = False,
               backend_options: dict | None = None, **options) -> Judge:
    """Build a judge from a spec string or a parsed :class:`JudgeSpec` (see the module
    docstring for the forms).

    ``mode`` and ``swap`` apply to GenRM judges; the other judges have one way of judging and a
    score that does not depend on order, so they ignore both. ``options`` go to the judge's
    constructor (GenRM: ``max_new_tokens``, ``temperature``, ``seed``; scalar: ``device``,
    ``batch_size``, ``max_length``); ``backend_options`` to a GenRM's backend
    (``quillrl.backends.make_backend``: ``device``, ``batch_size``, ``max_concurrency``...).
    """
    spec = JudgeSpec.parse(spec)
    if spec.kind == "genrm":
        from ..backends import make_backend  # heavy imports only when a GenRM is asked for

        _check_options(GenRMJudge, spec.text, ("backend",), mode=mode, swap=swap, **options)
        backend = make_backend(spec.backend, **(backend_options or {}))
        try:
            judge = GenRMJudge(backend, mode=mode, swap=swap, **options)
        except Exception:
            backend.close()  # a bad setting must not leave a loaded model or a client behind
            raise
        judge.name = spec.text  # names the model too, for reports
        return judge
    if spec.kind == "scalar":
        _check_options(ScalarRMJudge, spec.text, ("path",), **options)
        return ScalarRMJudge(spec.target, **options)
    return LengthJudge() if spec.target == "length" else RandomJudge(spec.seed)
