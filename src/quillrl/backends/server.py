"""A small OpenAI-compatible HTTP server over a :class:`LocalBackend` (``quillrl serve``).

Serves a trained judge or policy to anything that speaks the OpenAI API, including our own
``openai`` backend (whose tests run against it on loopback). Endpoints:

* ``GET /v1/models``, ``GET /health``;
* ``POST /v1/chat/completions``: ``messages``, ``n``, ``stop``, ``max_tokens`` /
  ``max_completion_tokens``, ``temperature``, ``top_p``, ``seed``, ``logprobs`` +
  ``top_logprobs``, and vLLM's ``continue_final_message`` (the last, assistant message is
  continued rather than answered);
* ``POST /v1/completions``: ``prompt`` (a string or a list of them), ``logprobs`` (an int).

Errors are OpenAI-shaped JSON (``{"error": {"message", "type", "param", "code"}}``). No
streaming, no tools. Requests are handled in threads but the model runs one request at a time
(the backend's lock): a request's prompts (``n`` copies, or a list of completion prompts) are
batched together, requests are not batched with each other.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..errors import QuillError
from .base import ChatPrompt, Generation, SamplingParams
from .local import LocalBackend

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 * 1024 * 1024
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
    free port (read it back from :attr:`url`)."""

    def __init__(self, backend: LocalBackend, host: str = "127.0.0.1", port: int = 8000, *,
                 model_name: str | None = None, default_max_tokens: int = 512):
        self.backend = backend
        self.model_name = model_name or backend.model_name
        self.default_max_tokens = default_max_tokens
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.api = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until :meth:`close` (from another thread) or Ctrl-C; ``poll_interval`` is how
        often the loop checks for a shutdown request."""
        self._httpd.serve_forever(poll_interval)

    def start(self) -> "OpenAIServer":
        """Serve in a daemon thread (tests, notebooks) and return self."""
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,),
                                        name="quillrl-serve", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> "OpenAIServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ routing

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        """One request to ``(status, JSON payload)``; never raises."""
        route = path.split("?", 1)[0].rstrip("/")
        routes = {("GET", "/v1/models"): self._models, ("GET", "/health"): lambda _: {},
                  ("POST", "/v1/chat/completions"): self._chat,
                  ("POST", "/v1/completions"): self._completions}
        try:
            if (method, route) not in routes:
                known = any(r == route for _, r in routes)
                raise ApiError(405 if known else 404, f"{method} {route} is not served here; "
                               "endpoints: GET /v1/models, POST /v1/chat/completions, "
                               "POST /v1/completions", kind="not_found_error")
            request = _parse_json(body) if method == "POST" else {}
            return 200, routes[(method, route)](request)
        except ApiError as exc:
            return exc.status, exc.payload()
        except QuillError as exc:  # a bad prompt or parameter the backend refused
            return 400, ApiError(400, str(exc)).payload()
        except Exception as exc:  # noqa: BLE001 - a server answers, it does not crash
            log.exception("request failed")
            return 500, ApiError(500, f"internal error: {type(exc).__name__}: {exc}",
                                 kind="server_error").payload()

    def _models(self, _: dict) -> dict:
        return {"object": "list", "data": [{"id": self.model_name, "object": "model",
                                            "created": 0, "owned_by": "quillrl"}]}

    def _chat(self, req: dict) -> dict:
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
        n = _int(req, "n", 1, 1, 128)
        gens = self.backend.generate([prompt] * n, params)
        choices = [{"index": i, "message": {"role": "assistant", "content": g.text},
                    "logprobs": _chat_logprobs(g) if top is not None else None,
                    "finish_reason": g.finish_reason} for i, g in enumerate(gens)]
        return self._response("chat.completion", "chatcmpl", choices, gens, n)

    def _completions(self, req: dict) -> dict:
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
        n = _int(req, "n", 1, 1, 128)
        gens = self.backend.generate([p for p in prompts for _ in range(n)], params)
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

    def _params(self, req: dict, max_tokens: Any, default_max: int, top: int | None) -> SamplingParams:
        stop = req.get("stop")
        stop = [stop] if isinstance(stop, str) else (stop or [])
        if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
            raise ApiError(400, "stop must be a string or a list of non-empty strings", "stop")
        return SamplingParams(
            max_new_tokens=_int({"max_tokens": max_tokens}, "max_tokens", default_max, 1, 1 << 20),
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the openai client reuses its connections
    server_version = "quillrl-serve"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            status, payload = 413, ApiError(413, "request body too large").payload()
            self.close_connection = True  # the unread body would corrupt the next request
        else:
            body = self.rfile.read(length) if length else b""
            status, payload = self.server.api.handle(method, self.path, body)  # type: ignore[attr-defined]
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        log.debug("%s %s", self.address_string(), format % args)


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
