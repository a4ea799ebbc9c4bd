"""Exact choice probabilities from a vLLM OpenAI server, for a choice outside the top log-probabilities.

The ``openai`` backend reads a choice's probability from the top log-probabilities the server
returns; a choice absent there used to read as 0. vLLM's ``/tokenize`` endpoint gives the
prompt's token ids as the server renders them, and a completion on ``prompt ids + [choice id]``
with ``prompt_logprobs=0`` returns that token's log-probability exactly (docs/design.md, "The
vLLM backend"). A server without ``/tokenize`` answers 404/405: the lookup gives up for good and
the choice stays at 0.0. :class:`ExactChoiceLookup` is mixed into
:class:`~quillrl.backends.openai_compat.OpenAIBackend`, whose retries, usage counters, base URL,
API key and timeout it uses.
"""

from __future__ import annotations

from typing import Any

import httpx

from ..errors import BackendError
from .base import ChatPrompt, Prompt


def first_choice(response: Any) -> Any:
    """The first choice of an OpenAI-style response; none is an error naming the response."""
    if not getattr(response, "choices", None):
        raise BackendError(f"the server returned no choices: {str(response)[:300]}")
    return response.choices[0]


class ExactChoiceLookup:
    """``_given_token_logprob`` and ``_tokenize`` for a backend with ``base_url``, ``api_key``,
    ``timeout``, ``usage``, ``_with_retries``, ``_http`` and ``_tokenize_missing``."""

    async def _given_token_logprob(self, prompt: Prompt, choice: str, model: str) -> float | None:
        """log p(choice's first token | prompt) from vLLM's prompt log-probabilities, or None
        where the server cannot tell (no ``/tokenize``)."""
        if self._tokenize_missing or (isinstance(prompt, ChatPrompt) and not prompt.assistant_prefix):
            return None
        prompt_ids = await self._tokenize(prompt, "", model)
        joint = await self._tokenize(prompt, choice, model)
        if prompt_ids is None or joint is None:
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
        """Token ids of ``prompt`` + ``extra`` as the server renders them (vLLM's ``/tokenize``)."""
        if isinstance(prompt, ChatPrompt):
            body: dict[str, Any] = {
                "model": model, "add_generation_prompt": False, "continue_final_message": True,
                "add_special_tokens": False,
                "messages": [dict(m) for m in prompt.messages]
                + [{"role": "assistant", "content": prompt.assistant_prefix + extra}]}
        else:
            body = {"model": model, "prompt": prompt + extra,
                    "add_special_tokens": True if special is None else special}
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.timeout,
                                           headers={"Authorization": f"Bearer {self.api_key}"})
        root = self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url
        try:
            response = await self._http.post(root + "/tokenize", json=body)
        except httpx.HTTPError as exc:
            raise BackendError(f"tokenize request to {root} failed: {exc}") from exc
        if response.status_code in (404, 405):
            self._tokenize_missing = True  # not vLLM: choices outside the top list stay 0.0
            return None
        if response.status_code != 200:
            raise BackendError(f"tokenize request to {root} failed: HTTP {response.status_code}: "
                               f"{response.text[:300]}")
        return [int(t) for t in response.json()["tokens"]]

    # ------------------------------------------------------------------ one request

