"""Exact choice probabilities from a vLLM OpenAI server, for a choice outside the top log-probabilities.

The ``openai`` backend reads a choice's probability from the top log-probabilities the server
returns; a choice absent there used to read as 0. vLLM's ``/tokenize`` endpoint gives the
prompt's token ids as the server renders them, and a completion on ``prompt ids + [choice id]``
with ``prompt_logprobs=0`` returns that token's log-probability exactly (docs/design.md, "The
vLLM backend"). A server without ``/tokenize`` answers 404/405: the lookup gives up for good and
the choice stays at 0.0. :class:`ExactChoiceLookup` is mixed into
:class:`~quillrl.backends.openai_compat.OpenAIBackend`, whose retries (``/tokenize`` too),
usage counters and ``continue_final_message`` setting it uses.
"""

from __future__ import annotations

from typing import Any

from ..errors import BackendError
from .base import ChatPrompt, Prompt


def first_choice(response: Any) -> Any:
    """The first choice of an OpenAI-style response; none is an error naming the response."""
    if not getattr(response, "choices", None):
        raise BackendError(f"the server returned no choices: {str(response)[:300]}")
    return response.choices[0]


class ExactChoiceLookup:
    """``_given_token_logprob`` and ``_tokenize`` for a backend with ``base_url``, ``usage``,
    ``continue_final_message``, ``_with_retries`` (kinds ``completion`` and ``tokenize``) and
    ``_tokenize_missing``."""

    async def _given_token_logprob(self, prompt: Prompt, choice: str, model: str) -> float | None:
        """log p(choice's first token | prompt) from vLLM's prompt log-probabilities, or None
        where the server cannot tell (no ``/tokenize``)."""
        if self._tokenize_missing or (isinstance(prompt, ChatPrompt) and not prompt.assistant_prefix):
            return None
        prompt_ids = await self._tokenize(prompt, "", model)
        joint = None if prompt_ids is None else await self._tokenize(prompt, choice, model)
        if joint is None:  # no /tokenize: asked once, never again
            return None
        n = len(prompt_ids)
        if len(joint) > n and joint[:n] == prompt_ids:
            token = joint[n]
        else:  # BPE merged the prompt's end with the choice: the choice spelled on its own
            alone = await self._tokenize(choice, "", model, special=False)
            if not alone:
                return None
            token = alone[0]
        response = await self._with_retries("completion", {
            "model": model, "prompt": prompt_ids + [token], "max_tokens": 1, "temperature": 0.0,
            "extra_body": {"prompt_logprobs": 0}})
        self.usage.count("choice_exact_lookups")
        entries = (first_choice(response).model_extra or {}).get("prompt_logprobs") or []
        last = entries[-1] if entries else None
        found = (last or {}).get(str(token))
        if found is None:
            raise BackendError(f"{self.base_url} returned no prompt log-probability for token {token}")
        return float(found["logprob"] if isinstance(found, dict) else found)

    async def _tokenize(self, prompt: Prompt, extra: str, model: str,
                        special: bool | None = None) -> list[int] | None:
        """Token ids of ``prompt`` + ``extra`` as the server renders them (vLLM's ``/tokenize``),
        rendered as the chat request is (``continue_final_message`` or not); retried as it is."""
        if isinstance(prompt, ChatPrompt):
            body: dict[str, Any] = {
                "model": model, "add_special_tokens": False,
                "messages": [dict(m) for m in prompt.messages]
                + [{"role": "assistant", "content": prompt.assistant_prefix + extra}]}
            if self.continue_final_message:
                body.update(add_generation_prompt=False, continue_final_message=True)
        else:
            body = {"model": model, "prompt": prompt + extra,
                    "add_special_tokens": True if special is None else special}
        response = await self._with_retries("tokenize", body)
        if response is None:
            self._tokenize_missing = True  # not vLLM: choices outside the top list stay 0.0
            return None
        return [int(t) for t in response["tokens"]]

