"""The one interface every inference backend implements.

Two operations, batched:

* ``generate(prompts, params)``: sample completions (sampling parameters, stop strings, max
  tokens), optionally with the top log-probabilities of every generated token.
* ``choice_probs(prompts, choices)``: the probability of each candidate continuation's first
  token at the end of each prompt, *not* renormalised. Verdict-only judging and verdict
  entropy read ``p(A)`` and ``p(B)`` from this with a single forward pass.

A prompt is either raw text (sent as is) or a :class:`ChatPrompt`: chat messages rendered with
the model's chat template, optionally followed by the start of the assistant's reply
(``assistant_prefix``) that the model must continue.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence, Union

import numpy as np


@dataclass(frozen=True)
class ChatPrompt:
    """Chat messages plus the beginning of the assistant turn the model continues from."""

    messages: tuple[dict, ...]
    assistant_prefix: str = ""

    @classmethod
    def user(cls, content: str, assistant_prefix: str = "", system: str | None = None) -> "ChatPrompt":
        msgs = [{"role": "system", "content": system}] if system else []
        msgs.append({"role": "user", "content": content})
        return cls(tuple(msgs), assistant_prefix)


Prompt = Union[str, ChatPrompt]


@dataclass(frozen=True)
class SamplingParams:
    """Sampling settings; ``temperature == 0`` means greedy decoding."""

    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: int | None = None  # return the top-k log-probabilities of each generated token

    def validate(self) -> "SamplingParams":
        """Raise a ConfigError naming the bad field; return self."""
        from ..errors import ConfigError

        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.logprobs is not None and self.logprobs < 0:
            raise ConfigError(f"logprobs must be None or >= 0, got {self.logprobs}")
        if isinstance(self.stop, str):
            raise ConfigError("stop must be a tuple of strings, not one string")
        return self


@dataclass
class Generation:
    """One completion and what it cost."""

    text: str
    finish_reason: str  # "stop" (EOS or a stop string) or "length"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # with SamplingParams.logprobs: one {token_text: logprob} dict per generated token
    top_logprobs: list[dict[str, float]] | None = None
    seconds: float = 0.0
    # with SamplingParams.logprobs: the generated tokens and the logprob of each. They run up to
    # and including the token that ended generation (EOS, or the one completing a stop string),
    # like vLLM, so they can extend past `text`, which excludes EOS and stop strings.
    tokens: list[str] | None = None
    token_logprobs: list[float] | None = None


class Backend(ABC):
    """Batched generation and choice scoring over one model.

    Every backend keeps running totals in ``usage`` (a :class:`UsageCounter`) for cost reports.
    """

    name: str = "backend"
    usage: "UsageCounter"

    @abstractmethod
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Generation]:
        """One :class:`Generation` per prompt, in order."""

    @abstractmethod
    def choice_probs(self, prompts: Sequence[Prompt], choices: Sequence[str]) -> np.ndarray:
        """Array ``(len(prompts), len(choices))``: probability of each choice's first token
        immediately after each prompt (raw, not renormalised over the choices)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (threads, connections, GPU memory)."""

    def reusing_generation_cache(self) -> contextlib.AbstractContextManager:
        """A scope in which ``choice_probs`` may start from the KV cache that ``generate``
        computed for a prefix of its prompt (a reasoning judge reads p(A) after its own chain).
        A no-op here; the local backend implements it. Servers with prefix caching (vLLM,
        SGLang) get the same saving on their side."""
        return contextlib.nullcontext()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class UsageCounter:
    """Running totals a backend keeps, for cost reporting.

    ``calls`` counts prompts served (one request each on a server), ``seconds`` wall time spent
    in the backend, ``failures`` requests that failed for good. ``extra`` holds named counters a
    backend adds (retries, choice-probability fallbacks, ...); :meth:`count` bumps one.
    """

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    failures: int = 0
    extra: dict = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        self.extra[key] = self.extra.get(key, 0) + n

    def as_dict(self) -> dict:
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "seconds": round(self.seconds, 4),
                "failures": self.failures, **self.extra}
