"""A backend spec string, parsed once into a typed, frozen :class:`BackendSpec`.

The forms (module docstring of :mod:`quillrl.backends`)::

    local[:<model>]                               transformers in this process
    vllm[:<model>][?<engine option>=<value>&...]  vLLM in this process
    openai:<base url>[?timeout=S&attempts=N][#<model>][;api_key_env=VAR][;allow_insecure_key=1]

This is the one place a backend spec is taken apart: :func:`~quillrl.backends.make_backend`, a
judge spec's GenRM backend (:class:`~quillrl.judges.JudgeSpec`), a policy's ``--model`` and the
free-text verifier all read its fields. Nothing is loaded or called.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from ..errors import ConfigError

SPEC_FORMS = ("local", "local:<model name or directory>",
              "openai:<http(s)://host:port/v1>#<model>", "openai:<http(s)://host:port/v1>",
              "openai:<url>#<model>;api_key_env=<VAR>",
              "vllm", "vllm:<model name or directory>", "vllm:<model>?<option>=<value>&...")
SPEC_OPTIONS = {"api_key_env": str, "allow_insecure_key": lambda v: v.lower() in ("1", "true", "yes")}


@dataclass(frozen=True)
class BackendSpec:
    """What a backend spec names. ``text`` is the spec as written.

    ``model`` is the model: a name or directory for ``local`` and ``vllm`` (empty: the default
    model), the ``#<model>`` an OpenAI-compatible server serves (empty: its first). ``url`` is an
    OpenAI-compatible server's base URL. ``options`` are the typed options written in the spec:
    vLLM's engine options, or an OpenAI backend's ``timeout``, ``attempts``, ``api_key_env`` and
    ``allow_insecure_key``; options passed to ``make_backend`` take precedence over them.

    >>> BackendSpec.parse("vllm:smollm2-135m-instruct?dtype=float32").options
    {'dtype': 'float32'}
    >>> s = BackendSpec.parse("openai:http://h:1/v1?attempts=2#m;api_key_env=KEY")
    >>> s.url, s.model, s.options
    ('http://h:1/v1', 'm', {'api_key_env': 'KEY', 'attempts': 2})
    """

    text: str
    kind: Literal["local", "vllm", "openai"]
    model: str = ""
    url: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str | BackendSpec) -> BackendSpec:
        """The spec's fields, or a ConfigError that lists the accepted forms."""
        if isinstance(spec, BackendSpec):
            return spec
        if not isinstance(spec, str):
            raise ConfigError(f"a backend spec must be a string, not {type(spec).__name__}")
        text = spec.strip()
        kind = text.split(":", 1)[0].split("?", 1)[0]
        if kind == "local":
            return cls(spec, "local", model=text.partition(":")[2].strip())
        if kind == "vllm":
            from .vllm_options import split_vllm_spec

            head, options = split_vllm_spec(text)
            return cls(spec, "vllm", model=head.partition(":")[2].strip(), options=options)
        if kind == "openai":
            return _openai(spec, text.partition(":")[2])
        raise ConfigError(f"unknown backend spec '{spec}'; accepted forms: {', '.join(SPEC_FORMS)}")


def _openai(spec: str, rest: str) -> BackendSpec:
    rest, options = _spec_options(spec, rest)
    url, _, model = rest.strip().partition("#")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"backend spec '{spec}': after 'openai:' comes the server's base URL, "
                          "e.g. openai:http://127.0.0.1:8000/v1#my-model")
    url, retry = _retry_settings(spec, url)
    return BackendSpec(spec, "openai", model=model, url=url, options={**options, **retry})


def _spec_options(spec: str, rest: str) -> tuple[str, dict]:
    """``URL#model;api_key_env=NAME;allow_insecure_key=true``: options written in the spec.

    >>> _spec_options("s", "http://h/v1#m;api_key_env=KEY")
    ('http://h/v1#m', {'api_key_env': 'KEY'})
    """
    head, *parts = rest.split(";")
    options = {}
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
            raise ConfigError(f"backend spec '{spec}': {key} must be a positive number, "
                              f"got {value!r}")
        settings[key] = number
    return urlunsplit(parts._replace(query=urlencode(query))), settings
