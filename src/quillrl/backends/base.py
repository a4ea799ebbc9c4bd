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
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": content}]
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


class Backend(ABC):
    """Batched generation and choice scoring over one model."""

    name: str = "backend"

    @abstractmethod
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Generation]:
        """One :class:`Generation` per prompt, in order."""

    @abstractmethod
    def choice_probs(self, prompts: Sequence[Prompt], choices: Sequence[str]) -> np.ndarray:
        """Array ``(len(prompts), len(choices))``: probability of each choice's first token
        immediately after each prompt (raw, not renormalised over the choices)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (threads, connections, GPU memory)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class UsageCounter:
    """Running totals a backend keeps, for cost reporting."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    failures: int = 0
    extra: dict = field(default_factory=dict)
