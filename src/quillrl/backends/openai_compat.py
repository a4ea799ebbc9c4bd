"""Any OpenAI-compatible server (vLLM, SGLang, llama.cpp, ``quillrl serve``, hosted APIs).

Requests go through the official ``openai`` client (``AsyncOpenAI``), at most
``max_concurrency`` in flight, each prompt its own request:

* a raw string goes to ``/v1/completions``;
* a :class:`ChatPrompt` to ``/v1/chat/completions``; one with an ``assistant_prefix`` (the
  judge's reasoning prefill or verdict prefix) sends the prefix as a final assistant message
  with vLLM/SGLang's extra body ``{"add_generation_prompt": false, "continue_final_message":
  true}`` (``quillrl serve`` accepts it too), so the server renders the template exactly as
  the local backend does and the model continues the prefix. The fallback, for servers that
  reject these fields (hosted APIs answer HTTP 400): ``continue_final_message=False`` sends
  the prefix as a plain final assistant message, which llama.cpp's server and prefill-style
  APIs continue natively; a server that opens a new turn instead writes the whole reply, and
  the GenRM parser reads a reply that restates ``<analysis>`` on its own
  (:func:`~quillrl.judges.genrm.verdict_probe`). A 400 that names these fields says so.

Failures on 408/409/429/5xx, timeouts and connection errors are retried with exponential
backoff and jitter (honouring ``Retry-After``, up to ``backoff_max``); the client's own retries
are off so that every retry is counted in ``usage.extra["retries"]``. A request that still fails
raises :class:`BackendError` and cancels the rest of its batch.

``choice_probs`` asks for one greedy token with ``top_logprobs`` and reads each choice's
probability from the token whose text is the longest prefix of the choice (the server's
tokenizer is not available here, and its first token of a choice is, for BPE, that longest
matching piece). A choice absent from the top list (counted in
``usage.extra["choice_outside_top_logprobs"]``) is read exactly where the server is vLLM: its
``/tokenize`` endpoint gives the prompt's token ids as the server renders them and the choice's
first token id (the rule of ``prompts.choice_token_ids``), and a completion on
``prompt ids + [choice id]`` with ``prompt_logprobs=0`` returns that token's log-probability
(counted in ``usage.extra["choice_exact_lookups"]``). A server without ``/tokenize`` (or a
ChatPrompt without an assistant prefix, which vLLM cannot render as a continuation) leaves
such a choice at 0.0, its probability being below the last listed one. A server that
returns no logprobs at all gets the documented fallback: probability 1.0 for the choice the
greedy token spells, 0.0 for the rest, counted in ``usage.extra["choice_probs_fallback"]`` and
warned about once, since a 0/1 "probability" makes verdict entropy meaningless.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import time
import warnings
from typing import Any, Callable, Coroutine, Sequence

import numpy as np
import openai

from ..errors import BackendError, ConfigError
from .aio import LoopThread
from .base import Backend, ChatPrompt, Generation, Prompt, SamplingParams, UsageCounter
from .exact_choice import ExactChoiceLookup
from .exact_choice import first_choice as _first_choice

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 409, 429}  # and every 5xx
# A server that accepts connections but never answers fails a request after
# 3 attempts x 40 s + backoff (about 2 minutes): long enough for a slow reasoning reply on a
# loaded server, short enough that a dead one is noticed (docs/design.md, "Reliability").
DEFAULT_TIMEOUT = 40.0
DEFAULT_ATTEMPTS = 3


class OpenAIBackend(ExactChoiceLookup, Backend):
    """Batched requests to an OpenAI-compatible server at ``base_url`` (ending in ``/v1``).

    ``model=None`` uses the first model the server lists. The API key is explicit: ``api_key``,
    or the environment variable *named* by ``api_key_env`` (in a spec:
    ``openai:https://host/v1#model;api_key_env=OPENAI_API_KEY``); with neither, ``"EMPTY"`` (what
    local servers accept), so no key is ever picked up from the environment unasked. A key is
    never sent over plain http to a host beyond loopback unless ``allow_insecure_key=True``.
    ``max_tokens_param`` names the chat length field: ``"max_tokens"`` is understood by vLLM,
    SGLang and llama.cpp; OpenAI's newest models want ``"max_completion_tokens"``.
    ``timeout`` (seconds per request) and ``attempts`` (tries per request, the first included)
    bound how long a dead server can stall a run. ``on_retry``, if set, is called as
    ``on_retry(retries_so_far, reason)`` before each retry (the CLI shows it on its progress bar).
    """

    name = "openai"

    def __init__(self, base_url: str, model: str | None = None, *, api_key: str | None = None,
                 api_key_env: str | None = None, allow_insecure_key: bool = False, max_concurrency: int = 16,
                 timeout: float = DEFAULT_TIMEOUT, attempts: int = DEFAULT_ATTEMPTS,
                 backoff: float = 0.5,
                 backoff_max: float = 30.0, top_logprobs: int = 20,
                 max_tokens_param: str = "max_tokens", extra_body: dict | None = None,
                 continue_final_message: bool = True):
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got '{base_url}'")
        for label, value, low in (("max_concurrency", max_concurrency, 1), ("attempts", attempts, 1),
                                  ("top_logprobs", top_logprobs, 1)):
            if value < low:
                raise ConfigError(f"{label} must be >= {low}, got {value}")
        if timeout <= 0 or backoff < 0 or backoff_max < 0:
            raise ConfigError("timeout must be > 0 and backoff, backoff_max >= 0")
        if max_tokens_param not in ("max_tokens", "max_completion_tokens"):
            raise ConfigError("max_tokens_param must be 'max_tokens' or 'max_completion_tokens'")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = _api_key(self.base_url, api_key, api_key_env, allow_insecure_key)
        self.max_concurrency, self.timeout, self.attempts = max_concurrency, timeout, attempts
        self.backoff, self.backoff_max, self.top_logprobs = backoff, backoff_max, top_logprobs
        self.max_tokens_param = max_tokens_param
        self.extra_body = dict(extra_body or {})
        self.continue_final_message = bool(continue_final_message)
        self.usage = UsageCounter()
        self._loop = LoopThread(f"quillrl-openai-{self.base_url}")
        self._client: openai.AsyncOpenAI | None = None
        self._tokenize_missing = False
        self._semaphore: asyncio.Semaphore | None = None
        self._warned_fallback = False
        self._jitter = random.Random()
        self.on_retry: Callable[[int, str], None] | None = None

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r})"

    # ------------------------------------------------------------------ public API

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Generation]:
        return self._loop.run(self._generate_all(list(prompts), params.validate()))

    def choice_probs(self, prompts: Sequence[Prompt], choices: Sequence[str]) -> np.ndarray:
        return self._loop.run(self._choice_probs_all(list(prompts), list(choices)))

    async def agenerate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Generation]:
        """:meth:`generate` for async callers; runs on the backend's loop, awaited on yours."""
        return await self._loop.submit_async(self._generate_all(list(prompts), params.validate()))

    async def achoice_probs(self, prompts: Sequence[Prompt], choices: Sequence[str]) -> np.ndarray:
        return await self._loop.submit_async(self._choice_probs_all(list(prompts), list(choices)))

    def close(self) -> None:
        client, self._client = self._client, None

        async def close_all() -> None:
            if client is not None:
                await client.close()

        self._loop.close(close_all())

    # ------------------------------------------------------------------ batches

    async def _generate_all(self, prompts: list[Prompt], params: SamplingParams) -> list[Generation]:
        model = await self._model()
        return await _gather_or_cancel(
            [self._generate_one(p, params, i, model) for i, p in enumerate(prompts)])

    async def _choice_probs_all(self, prompts: list[Prompt], choices: list[str]) -> np.ndarray:
        if not choices or not all(choices):
            raise ConfigError("choice_probs needs at least one choice, and no empty choice")
        model = await self._model()
        rows = await _gather_or_cancel([self._choice_row(p, choices, model) for p in prompts])
        return np.array(rows, dtype=np.float64).reshape(len(prompts), len(choices))

    async def _choice_row(self, prompt: Prompt, choices: list[str], model: str) -> list[float]:
        params = SamplingParams(max_new_tokens=1, temperature=0.0, logprobs=self.top_logprobs)
        gen = await self._generate_one(prompt, params, 0, model)
        top = gen.top_logprobs[0] if gen.top_logprobs else {}
        if not top and gen.tokens and gen.token_logprobs:
            top = {gen.tokens[0]: gen.token_logprobs[0]}  # the chosen token only: still a real logprob
        if top:
            row = []
            for choice in choices:
                token = match_choice_token(choice, top)
                if token is not None:
                    row.append(math.exp(top[token]))
                    continue
                self.usage.count("choice_outside_top_logprobs")
                logprob = await self._given_token_logprob(prompt, choice, model)
                row.append(0.0 if logprob is None else math.exp(logprob))
            return row
        self.usage.count("choice_probs_fallback")
        if not self._warned_fallback:
            self._warned_fallback = True
            message = (f"the server at {self.base_url} returned no logprobs; choice_probs falls "
                       "back to 1.0 for the choice its greedy token spells and 0.0 for the others "
                       "(see usage.extra['choice_probs_fallback']); verdict probabilities and "
                       "entropies from this backend are not real probabilities")
            log.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
        # the greedy token is the first token of every choice that starts with it
        spelled = {gen.text: 0.0}
        return [1.0 if match_choice_token(c, spelled) is not None else 0.0 for c in choices]

    # ------------------------------------------------------------------ one request

    async def _generate_one(self, prompt: Prompt, params: SamplingParams, index: int,
                            model: str) -> Generation:
        kind, kwargs = self._request(prompt, params, index, model)
        start = time.perf_counter()
        response = await self._with_retries(kind, kwargs)
        gen = _parse_chat(response, params) if kind == "chat" else _parse_completion(response, params)
        gen.seconds = time.perf_counter() - start
        self.usage.calls += 1
        self.usage.prompt_tokens += gen.prompt_tokens
        self.usage.completion_tokens += gen.completion_tokens
        self.usage.seconds += gen.seconds
        return gen

    def _request(self, prompt: Prompt, params: SamplingParams, index: int,
                 model: str) -> tuple[str, dict]:
        kwargs: dict[str, Any] = {"model": model, "temperature": params.temperature,
                                  "top_p": params.top_p}
        if params.stop:
            kwargs["stop"] = list(params.stop)
        if params.seed is not None:
            # one seed per request: a group of identical prompts must not get identical samples
            kwargs["seed"] = params.seed + index
        extra = dict(self.extra_body)
        if isinstance(prompt, ChatPrompt):
            messages = [dict(m) for m in prompt.messages]
            if prompt.assistant_prefix:
                messages.append({"role": "assistant", "content": prompt.assistant_prefix})
                if self.continue_final_message:
                    extra.update(add_generation_prompt=False, continue_final_message=True)
            kwargs["messages"] = messages
            kwargs[self.max_tokens_param] = params.max_new_tokens
            if params.logprobs is not None:
                kwargs.update(logprobs=True, top_logprobs=params.logprobs)
            kind = "chat"
        elif isinstance(prompt, str):
            kwargs["prompt"] = prompt
            kwargs["max_tokens"] = params.max_new_tokens  # the legacy endpoint knows no other name
            if params.logprobs is not None:
                kwargs["logprobs"] = params.logprobs
            kind = "completion"
        else:
            raise ConfigError(f"a prompt must be a str or a ChatPrompt, not {type(prompt).__name__}")
        if extra:
            kwargs["extra_body"] = extra
        return kind, kwargs

    async def _with_retries(self, kind: str, kwargs: dict) -> Any:
        """One request of ``kind`` (``chat``, ``completion``, or ``tokenize``: vLLM's
        ``/tokenize`` at the server's root, answered as a dict, or ``None`` where the server
        has none: 404/405, not a failure), retried as above."""
        client, semaphore = self._session()
        if kind == "tokenize":
            root = self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url
            create: Callable = lambda **body: client.post(root + "/tokenize", cast_to=dict, body=body)  # noqa: E731
        else:
            create = client.chat.completions.create if kind == "chat" else client.completions.create
        attempt = 0
        while True:
            try:
                async with semaphore:
                    return await create(**kwargs)
            except openai.APIError as exc:
                if kind == "tokenize" and getattr(exc, "status_code", None) in (404, 405):
                    return None
                if not _retryable(exc) or attempt + 1 >= self.attempts:
                    self.usage.failures += 1
                    tries = f" after {attempt + 1} attempts" if attempt else ""
                    raise BackendError(f"{kind} request to {self.base_url} failed{tries}: "
                                       f"{_describe(exc)}{_prefill_hint(exc, kwargs)}") from exc
                delay = self._delay(attempt, exc)
                self.usage.count("retries")
                if self.on_retry is not None:
                    self.on_retry(int(self.usage.extra.get("retries", 0)), _describe(exc))
                log.info("retrying %s request in %.2fs after: %s", kind, delay, _describe(exc))
                attempt += 1
            # sleep outside the semaphore: a backing-off request must not hold a slot
            await asyncio.sleep(delay)

    def _delay(self, attempt: int, exc: Exception) -> float:
        delay = min(self.backoff_max, self.backoff * 2 ** attempt) * self._jitter.uniform(0.5, 1.0)
        response = getattr(exc, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        try:
            delay = max(delay, min(float(retry_after), self.backoff_max)) if retry_after else delay
        except ValueError:
            pass  # an HTTP-date Retry-After: keep our own backoff
        return delay

    def _session(self) -> tuple[openai.AsyncOpenAI, asyncio.Semaphore]:
        # created on the private loop, on first use: both are bound to the loop they start on
        if self._client is None:
            self._client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key,
                                              timeout=self.timeout, max_retries=0)
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
        return self._client, self._semaphore  # type: ignore[return-value]

    async def _model(self) -> str:
        if self.model is None:
            client, _ = self._session()
            try:
                listed = [m.id async for m in client.models.list()]
            except openai.APIError as exc:
                raise BackendError(f"could not list the models of {self.base_url}: {_describe(exc)}; "
                                   "name the model in the spec (openai:URL#MODEL)") from exc
            if not listed:
                raise BackendError(f"{self.base_url} serves no model")
            self.model = listed[0]
        return self.model


def _api_key(base_url: str, api_key: str | None, api_key_env: str | None, allow_insecure: bool) -> str:
    """The key to send: explicit, or from the named variable; refused over plain remote http."""
    from urllib.parse import urlparse

    from ..httpserve.http import is_loopback

    if api_key is None and api_key_env is not None:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise ConfigError(f"api_key_env names ${api_key_env}, but that environment variable is unset or empty")
    if not api_key:
        return "EMPTY"
    url = urlparse(base_url)
    if url.scheme == "http" and not is_loopback(url.hostname or "") and not allow_insecure:
        raise ConfigError(f"refusing to send an API key over plain http to {url.hostname}: use https, "
                          "or pass allow_insecure_key=true if this network is trusted")
    return api_key


def match_choice_token(choice: str, tokens: dict[str, float]) -> str | None:
    """The longest non-empty token that ``choice`` starts with, or ``None``.

    >>> match_choice_token(" Yes", {" Y": -3.0, " Yes": -0.1, "Yes": -2.0})
    ' Yes'
    >>> match_choice_token("A", {"B": -0.1, "A.": -0.2}) is None
    True
    """
    hits = [t for t in tokens if t and choice.startswith(t)]
    return max(hits, key=len) if hits else None


def _parse_chat(response: Any, params: SamplingParams) -> Generation:
    choice = _first_choice(response)
    gen = Generation(text=choice.message.content or "",
                     finish_reason="length" if choice.finish_reason == "length" else "stop",
                     **_usage(response))
    content = getattr(choice.logprobs, "content", None) if params.logprobs is not None else None
    if content:
        gen.tokens = [c.token for c in content]
        gen.token_logprobs = [c.logprob for c in content]
        gen.top_logprobs = [_top_dict((t.token, t.logprob) for t in (c.top_logprobs or []))
                            for c in content]
    return gen


def _parse_completion(response: Any, params: SamplingParams) -> Generation:
    choice = _first_choice(response)
    gen = Generation(text=choice.text or "",
                     finish_reason="length" if choice.finish_reason == "length" else "stop",
                     **_usage(response))
    lp = choice.logprobs if params.logprobs is not None else None
    if lp is not None and lp.tokens:
        gen.tokens = list(lp.tokens)
        gen.token_logprobs = [float(x) if x is not None else float("nan") for x in lp.token_logprobs or []]
        gen.top_logprobs = [_top_dict((d or {}).items()) for d in (lp.top_logprobs or [])]
    return gen


def _usage(response: Any) -> dict:
    usage = getattr(response, "usage", None)
    return {"prompt_tokens": getattr(usage, "prompt_tokens", 0) or 0,
            "completion_tokens": getattr(usage, "completion_tokens", 0) or 0}


def _top_dict(pairs: Any) -> dict[str, float]:
    top: dict[str, float] = {}
    for token, logprob in pairs:
        top.setdefault(token, float(logprob))
    return top


def _prefill_hint(exc: Exception, kwargs: dict) -> str:
    """What to do when a server refuses to continue an assistant prefix."""
    if getattr(exc, "status_code", None) != 400 or "continue_final_message" not in kwargs.get("extra_body", {}):
        return ""
    return ("; this server may not support continue_final_message (vLLM's and SGLang's way to "
            "continue the judge's prefill): build the backend with continue_final_message=False "
            "to send the prefill as a plain assistant message")


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    status = getattr(exc, "status_code", None)
    return status is not None and (status in RETRY_STATUS or status >= 500)


def _describe(exc: Exception) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    status = getattr(exc, "status_code", None)
    if status is None:
        return f"{type(exc).__name__}: {exc}"
    body = getattr(exc, "body", None)  # the client hands over the JSON body's "error" object
    message = body.get("message") if isinstance(body, dict) else None
    return f"HTTP {status}: {message or exc.message}"


async def _gather_or_cancel(coros: list[Coroutine]) -> list[Any]:
    """``gather`` that cancels the other requests when one fails for good."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
