"""A small OpenAI-compatible HTTP server over a :class:`LocalBackend` (``quillrl serve``).

Serves a trained judge or policy to anything that speaks the OpenAI API, including our own
``openai`` backend (whose tests run against it on loopback). Endpoints:

* ``GET /v1/models``, ``GET /health``;
* ``POST /v1/chat/completions``: ``messages``, ``n``, ``stop``, ``max_tokens`` /
  ``max_completion_tokens``, ``temperature``, ``top_p``, ``seed``, ``logprobs`` +
  ``top_logprobs``, and vLLM's ``continue_final_message`` (the last, assistant message is
  continued rather than answered);
* ``POST /v1/completions``: ``prompt`` (a string or a list of them), ``logprobs`` (an int).

Errors are OpenAI-shaped JSON (``{"error": {"message", "type", "param", "code"}}``), never an
exception's text. No streaming, no tools.

It runs on the same stack as ``serve-reward`` (FastAPI + uvicorn behind
:class:`~quillrl.httpserve.http.Guard`: body-size limit, slow-body timeout, bounded queue with 503,
per-request timeout, optional bearer token). Requests are parsed on the event loop and their
prompts handed to a :class:`~quillrl.httpserve.scheduler.FairScheduler`, which batches the prompts
of concurrent requests that share sampling settings into one ``generate`` call, taking them
round-robin across requests so that a small request is never starved behind a large one.
``n`` × prompts is capped per request (``max_prompts``), and so are ``max_tokens`` and their
product (``max_request_tokens``). A request whose client has gone is cancelled: its queued
prompts are dropped and its rows stop generating at the next token (see the scheduler).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from fastapi import Request  # module level: FastAPI resolves the route's annotations here

from ..errors import QuillError
from .base import ChatPrompt, Generation, SamplingParams
from .local import LocalBackend

log = logging.getLogger(__name__)

MAX_TOP_LOGPROBS = 20  # OpenAI's and vLLM's default limit


class ApiError(Exception):
    """A request the server refuses; becomes an OpenAI-shaped error response."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind

    def payload(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": None}}


class OpenAIServer:
    """``OpenAIServer(backend, host, port).start()`` serves in a thread; ``port=0`` picks a
    free port (read it back from :attr:`url` after ``start``). ``limits`` (a
    :class:`~quillrl.httpserve.http.HTTPSection`) and ``token`` guard every request."""

    def __init__(self, backend: LocalBackend, host: str = "127.0.0.1", port: int = 8000, *,
                 model_name: str | None = None, default_max_tokens: int = 512, max_tokens: int = 4096,
                 max_prompts: int = 256, max_batch: int = 32, limits: Any = None, token: str | None = None,
                 max_request_tokens: int = 65536):
        from ..httpserve.http import HTTPSection
        from ..httpserve.scheduler import FairScheduler

        self.backend = backend
        self.model_name = model_name or backend.model_name
        self.default_max_tokens, self.max_tokens, self.max_prompts = default_max_tokens, max_tokens, max_prompts
        self.max_request_tokens = max_request_tokens  # completions × max_tokens of one request
        self.host, self.port = host, port
        self.limits = limits or HTTPSection(host=host, port=port)
        self.token = token
        self.scheduler = FairScheduler(backend, max_batch)
        self.app = self._asgi()
        self._thread: Any = None

    @property
    def url(self) -> str:
        port = self._thread.port if self._thread is not None else self.port
        return f"http://{self.host}:{port}/v1"

    def serve_forever(self, on_bound: Any = None) -> None:
        """Serve in the foreground until Ctrl-C; ``on_bound(port)`` runs once the port is bound."""
        from ..httpserve.http import run_server

        def bound(port: int) -> None:
            self.port = port
            if on_bound is not None:
                on_bound(port)

        run_server(self.app, self.host, self.port, bound)

    def start(self) -> "OpenAIServer":
        """Serve in a daemon thread (tests, notebooks) and return self."""
        from ..httpserve.http import ServerThread

        self._thread = ServerThread(self.app, self.host, self.port).start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.port = self._thread.port  # ``url`` keeps naming the port it served on
            self._thread.close()
            self._thread = None
        self.scheduler.close()

    def __enter__(self) -> "OpenAIServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _asgi(self) -> Any:
        from fastapi import FastAPI
        from fastapi.responses import Response

        from ..httpserve.http import guarded

        app = FastAPI(title="quillrl serve", docs_url=None, redoc_url=None, openapi_url=None)

        @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
        async def any_route(path: str, request: Request) -> Response:
            status, payload = await self.handle(request.method, "/" + path, await request.body())
            # json.dumps as the old server did: a -inf logprob must not turn into a 500
            return Response(json.dumps(payload, ensure_ascii=False), status, media_type="application/json")

        return guarded(app, self.limits, self.token)

    # ------------------------------------------------------------------ routing

    async def handle(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        """One request to ``(status, JSON payload)``; never raises."""
        route = path.split("?", 1)[0].rstrip("/")
        routes = {("GET", "/v1/models"): self._models, ("GET", "/health"): self._health,
                  ("POST", "/v1/chat/completions"): self._chat,
                  ("POST", "/v1/completions"): self._completions}
        try:
            if (method, route) not in routes:
                known = any(r == route for _, r in routes)
                raise ApiError(405 if known else 404, f"{method} {route} is not served here; "
                               "endpoints: GET /v1/models, POST /v1/chat/completions, "
                               "POST /v1/completions", kind="not_found_error")
            request = _parse_json(body) if method == "POST" else {}
            return 200, await routes[(method, route)](request)
        except ApiError as exc:
            return exc.status, exc.payload()
        except QuillError as exc:  # a bad prompt or parameter the backend refused
            return 400, ApiError(400, str(exc)).payload()
        except Exception:  # noqa: BLE001 - a server answers, it does not crash
            log.exception("request failed")  # the log has the details; the client never does
            return 500, ApiError(500, "internal error (see the server log)", kind="server_error").payload()

    async def _health(self, _: dict) -> dict:
        return {}

    async def _models(self, _: dict) -> dict:
        return {"object": "list", "data": [{"id": self.model_name, "object": "model",
                                            "created": 0, "owned_by": "quillrl"}]}

    async def _chat(self, req: dict) -> dict:
        self._check_common(req)
        messages = req.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "messages must be a non-empty list", "messages")
        messages = [_message(m, i) for i, m in enumerate(messages)]
        continue_final = bool(req.get("continue_final_message", False))
        add_generation = req.get("add_generation_prompt")
        if continue_final and add_generation:
            raise ApiError(400, "continue_final_message and add_generation_prompt cannot both be true")
        if add_generation is False and not continue_final:
            raise ApiError(400, "add_generation_prompt=false is only supported with "
                           "continue_final_message=true", "add_generation_prompt")
        if continue_final:
            if messages[-1]["role"] != "assistant":
                raise ApiError(400, "continue_final_message needs the last message to be the "
                               "assistant's", "messages")
            prompt = ChatPrompt(tuple(messages[:-1]), assistant_prefix=messages[-1]["content"])
        else:
            prompt = ChatPrompt(tuple(messages))
        top = None
        if req.get("logprobs"):
            top = _int(req, "top_logprobs", 0, 0, MAX_TOP_LOGPROBS)
        elif req.get("top_logprobs") is not None:
            raise ApiError(400, "top_logprobs needs logprobs=true", "top_logprobs")
        max_tokens = req.get("max_completion_tokens", req.get("max_tokens"))
        params = self._params(req, max_tokens, self.default_max_tokens, top)
        n = _int(req, "n", 1, 1, self.max_prompts)
        self._check_budget(n, params, "n")
        gens = await self.scheduler.generate([prompt] * n, params)
        choices = [{"index": i, "message": {"role": "assistant", "content": g.text},
                    "logprobs": _chat_logprobs(g) if top is not None else None,
                    "finish_reason": g.finish_reason} for i, g in enumerate(gens)]
        return self._response("chat.completion", "chatcmpl", choices, gens, n)

    async def _completions(self, req: dict) -> dict:
        self._check_common(req)
        prompts = req.get("prompt")
        prompts = [prompts] if isinstance(prompts, str) else prompts
        if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
            raise ApiError(400, "prompt must be a string or a non-empty list of strings "
                           "(token-id prompts are not supported)", "prompt")
        unsupported = {"echo": bool(req.get("echo")), "suffix": bool(req.get("suffix")),
                       "best_of": req.get("best_of") not in (None, 1)}
        for field, used in unsupported.items():
            if used:
                raise ApiError(400, f"{field} is not supported by quillrl serve", field)
        top = _int(req, "logprobs", None, 0, MAX_TOP_LOGPROBS)
        params = self._params(req, req.get("max_tokens"), 16, top)  # 16: OpenAI's default
        n = _int(req, "n", 1, 1, self.max_prompts)
        if n * len(prompts) > self.max_prompts:
            raise ApiError(400, f"{len(prompts)} prompts × n={n} is over this server's limit of "
                           f"{self.max_prompts} completions per request", "prompt")
        self._check_budget(n * len(prompts), params, "prompt")
        gens = await self.scheduler.generate([p for p in prompts for _ in range(n)], params)
        choices = [{"index": i, "text": g.text,
                    "logprobs": _completion_logprobs(g) if top is not None else None,
                    "finish_reason": g.finish_reason} for i, g in enumerate(gens)]
        return self._response("text_completion", "cmpl", choices, gens, n)

    # ------------------------------------------------------------------ helpers

    def _check_common(self, req: dict) -> None:
        model = req.get("model")
        if model is not None and model != self.model_name:
            raise ApiError(404, f"model '{model}' does not exist; this server serves "
                           f"'{self.model_name}'", "model", kind="not_found_error")
        if req.get("stream"):
            raise ApiError(400, "streaming is not supported by quillrl serve", "stream")

    def _check_budget(self, completions: int, params: SamplingParams, param: str) -> None:
        """One request may ask for at most ``max_request_tokens`` tokens in all (completions ×
        max_tokens): a larger one would hold the model for many batches; split it."""
        asked = completions * params.max_new_tokens
        if asked > self.max_request_tokens:
            raise ApiError(400, f"{completions} completions × max_tokens={params.max_new_tokens} = "
                           f"{asked} tokens is over this server's limit of {self.max_request_tokens} "
                           "tokens per request; split it into smaller requests", param)

    def _params(self, req: dict, max_tokens: Any, default_max: int, top: int | None) -> SamplingParams:
        stop = req.get("stop")
        stop = [stop] if isinstance(stop, str) else (stop or [])
        if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
            raise ApiError(400, "stop must be a string or a list of non-empty strings", "stop")
        return SamplingParams(
            max_new_tokens=_int({"max_tokens": max_tokens}, "max_tokens", min(default_max, self.max_tokens),
                                1, self.max_tokens),
            temperature=_float(req, "temperature", 1.0, 0.0, 2.0),  # 1.0: OpenAI's default
            top_p=_float(req, "top_p", 1.0, 1e-9, 1.0),
            stop=tuple(stop), seed=_int(req, "seed", None, -(1 << 63), (1 << 63) - 1),
            logprobs=top,
        )

    def _response(self, obj: str, prefix: str, choices: list, gens: list[Generation], n: int) -> dict:
        # each prompt's tokens count once however many samples (n) were drawn from it
        prompt_tokens = sum(g.prompt_tokens for g in gens[::n])
        completion_tokens = sum(g.completion_tokens for g in gens)
        return {"id": f"{prefix}-{uuid.uuid4().hex}", "object": obj, "created": int(time.time()),
                "model": self.model_name, "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}


def _parse_json(body: bytes) -> dict:
    try:
        request = json.loads(body.decode("utf-8") or "null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(request, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return request


def _message(m: Any, i: int) -> dict:
    if not isinstance(m, dict) or not isinstance(m.get("role"), str):
        raise ApiError(400, f"messages[{i}] must be an object with a role", "messages")
    content = m.get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        if any(not isinstance(p, dict) or p.get("type") != "text" for p in content):
            raise ApiError(400, f"messages[{i}]: only text content parts are supported", "messages")
        content = "".join(str(p.get("text", "")) for p in content)
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise ApiError(400, f"messages[{i}].content must be a string or text parts", "messages")
    return {"role": m["role"], "content": content}


def _int(req: dict, key: str, default: Any, low: int, high: int) -> Any:
    value = req.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(400, f"{key} must be an integer in [{low}, {high}], got {value!r}", key)
    return value


def _float(req: dict, key: str, default: float, low: float, high: float) -> float:
    value = req.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ApiError(400, f"{key} must be a number in [{low:g}, {high:g}], got {value!r}", key)
    return float(value)


def _entry(token: str, logprob: float) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def _chat_logprobs(g: Generation) -> dict:
    return {"content": [{**_entry(t, lp), "top_logprobs": [_entry(k, v) for k, v in top.items()]}
                        for t, lp, top in zip(g.tokens or [], g.token_logprobs or [],
                                              g.top_logprobs or [])]}


def _completion_logprobs(g: Generation) -> dict:
    tokens = g.tokens or []
    offsets, at = [], 0
    for t in tokens:
        offsets.append(at)
        at += len(t)
    return {"tokens": tokens, "token_logprobs": g.token_logprobs or [],
            "top_logprobs": g.top_logprobs or [], "text_offset": offsets}
