"""What both HTTP servers share (``serve`` and ``serve-reward``): limits, auth, errors, uvicorn.

One place for the rules every request meets before a handler runs (docs/design.md, "Scale-out"):

* **auth**: with a token configured, every route but ``GET /health`` needs
  ``Authorization: Bearer <token>`` (401 otherwise, compared in constant time);
* **body size**: a ``Content-Length`` over ``max_body_bytes``, or a streamed body that grows past
  it, is answered 413 before the handler sees it; a malformed ``Content-Length`` (``abc``,
  ``-1``) is refused 400 by uvicorn's HTTP parser (h11) itself;
* **slow bodies**: the body is read here, before the request takes a slot or a handler runs;
  each chunk must arrive within ``body_timeout_s`` and the whole body within
  ``request_timeout_s`` (408): a client trickling one byte a second holds only its own socket
  (uvicorn is asynchronous), never a slot, a handler or the model;
* **a bounded queue**: at most ``max_inflight`` requests are admitted at once; the next one gets
  503 with ``Retry-After``;
* **per-request timeout**: a handler still running after ``request_timeout_s`` answers 504;
* **errors**: one JSON shape, never an exception's text; a body that fails validation answers
  400 and names the field (FastAPI's default would be 422).

``ServerThread`` runs an app under uvicorn on a port the OS picks (tests, benchmarks);
``run_server`` runs one in the foreground (the CLI) and warns when it is bound beyond loopback
without a token.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import threading
import time
from typing import Any, Awaitable, Callable

from pydantic import Field

from ..config import StageConfig

log = logging.getLogger(__name__)

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}
SHUTDOWN_GRACE_S = 3.0  # after Ctrl-C, how long requests in flight may still finish
CLIENT_GONE = 499  # nginx's "client closed request": counted in metrics, never sent


class HTTPSection(StageConfig):
    """Where a server listens and the limits every request meets."""

    host: str = Field("127.0.0.1", description="address to bind; beyond loopback, set a token")
    port: int = Field(8100, ge=0, le=65535, description="port to bind; 0 picks a free one")
    token_env: str | None = Field(None, description="name of the environment variable holding the "
                                  "bearer token clients must send (none: no auth)")
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="larger bodies get 413")
    body_timeout_s: float = Field(30.0, gt=0, description="max wait for each chunk of a request body (408)")
    request_timeout_s: float = Field(600.0, gt=0, description="a request still unanswered then gets 504")
    max_inflight: int = Field(1024, ge=1, description="requests admitted at once; the next gets 503")
    retry_after_s: int = Field(1, ge=1, description="Retry-After sent with a 503")


def is_loopback(host: str) -> bool:
    """``127.0.0.0/8``, ``::1`` and ``localhost`` are loopback; everything else is not.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0"), is_loopback("10.0.0.2")
    (True, True, False, False)
    """
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_token(token_env: str | None) -> str | None:
    """The bearer token from the named environment variable; an unset or empty one is an error."""
    import os

    from ..errors import ConfigError

    if token_env is None:
        return None
    token = os.environ.get(token_env, "")
    if not token:
        raise ConfigError(f"token_env names ${token_env}, but that environment variable is unset or empty")
    return token


def error_body(status: int, message: str, field: str | None = None, kind: str | None = None) -> bytes:
    """Our one error shape, OpenAI's (``{"error": {"message", "type", "param", "code"}}``)."""
    kind = kind or ("invalid_request_error" if status < 500 else "server_error")
    return json.dumps({"error": {"message": message, "type": kind, "param": field,
                                 "code": status}}).encode()


class Guard:
    """The ASGI middleware that applies :class:`HTTPSection`'s limits and the token.

    ``on_request(path, status, seconds)`` is called once per answered request (for metrics).
    """

    def __init__(self, app: Any, limits: HTTPSection, token: str | None,
                 on_request: Callable[[str, int, float], None] | None = None):
        self.app, self.limits, self.token = app, limits, token
        self.on_request = on_request or (lambda *_: None)
        self.inflight = 0

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, path = time.perf_counter(), scope.get("path", "")
        status = {"code": 500}

        async def send_counted(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        # the body is read before the request takes a slot: a slow client holds only its socket
        refusal = self._refusal(scope, path)
        body = await self._read_body(receive, time.monotonic()) if refusal is None else refusal
        if body == (CLIENT_GONE, "the client disconnected"):
            status["code"] = CLIENT_GONE  # nobody to answer
        elif isinstance(body, tuple):
            await _respond(send_counted, *body)
        elif self.inflight >= self.limits.max_inflight:
            await _respond(send_counted, 503, "the server is at capacity; retry later",
                           headers=[(b"retry-after", str(self.limits.retry_after_s).encode())])
        else:
            self.inflight += 1
            try:
                if await self._run(scope, body, receive, send_counted) == CLIENT_GONE:
                    status["code"] = CLIENT_GONE
            finally:
                self.inflight -= 1
        self.on_request(path, status["code"], time.perf_counter() - start)

    def _refusal(self, scope: dict, path: str) -> tuple[int, str] | None:
        headers = dict(scope.get("headers") or [])
        if self.token is not None and path != "/health":
            given = headers.get(b"authorization", b"").decode("latin-1")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return 401, "missing or wrong bearer token (Authorization: Bearer <token>)"
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limits.max_body_bytes:
            return 413, f"request body over {self.limits.max_body_bytes} bytes"
        return None

    async def _read_body(self, receive: Callable, began: float) -> bytes | tuple[int, str]:
        """The whole body, read here so that no handler ever waits on a slow client; or the
        (status, message) refusing it. Each chunk must come within ``body_timeout_s``, the
        whole body within ``request_timeout_s``."""
        chunks, size = [], 0
        while True:
            left = self.limits.request_timeout_s - (time.monotonic() - began)
            try:
                message = await asyncio.wait_for(receive(), max(0.0, min(self.limits.body_timeout_s, left)))
            except asyncio.TimeoutError:
                return 408, "the request body arrived too slowly"
            if message["type"] != "http.request":
                return CLIENT_GONE, "the client disconnected"
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limits.max_body_bytes:
                return 413, f"request body over {self.limits.max_body_bytes} bytes"
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _run(self, scope: dict, body: bytes, receive: Callable, send: Callable) -> int | None:
        """Run the app on the buffered body; cancel it if the client goes away (so a reward
        request waiting at the barrier is known to be abandoned; returns :data:`CLIENT_GONE`)
        or the timeout passes."""
        started, gone, sent = {"yes": False}, asyncio.Event(), {"yes": False}

        async def send_tracked(message: dict) -> None:
            started["yes"] = started["yes"] or message["type"] == "http.response.start"
            await send(message)

        async def watch() -> None:  # the only reader of the connection once the body is in
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        async def replay() -> dict:
            if not sent["yes"]:
                sent["yes"] = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        app = asyncio.ensure_future(self.app(scope, replay, send_tracked))
        watcher = asyncio.ensure_future(watch())
        try:
            done, _ = await asyncio.wait({app, watcher}, timeout=self.limits.request_timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
        if app not in done:
            app.cancel()
            await asyncio.gather(app, return_exceptions=True)
            if watcher in done:  # the client went away: nothing to answer
                return CLIENT_GONE
            if not started["yes"]:  # timed out, the client still there
                await _respond(send, 504, f"no answer within {self.limits.request_timeout_s:g} s")
            return None
        if app.exception() is not None:
            log.error("request to %s failed", scope.get("path"), exc_info=app.exception())
            if not started["yes"]:
                await _respond(send, 500, "internal error (see the server log)")


async def _respond(send: Callable, status: int, message: str,
                   headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = error_body(status, message)
    extra = list(headers or [])
    if status == 401:
        extra.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


def add_error_handlers(app: Any) -> None:
    """400 naming the field for bad bodies (malformed JSON included); our JSON shape for the
    HTTP errors FastAPI raises itself (404, 405)."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import Response
    from starlette.exceptions import HTTPException

    def reply(status: int, message: str, field: str | None = None) -> Response:
        return Response(error_body(status, message, field), status, media_type="application/json")

    async def invalid(request: Any, exc: RequestValidationError) -> Response:
        body = await request.body()
        try:
            json.loads(body or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as bad:
            where = f" (line {bad.lineno}, column {bad.colno})" if isinstance(bad, json.JSONDecodeError) else ""
            return reply(400, f"the body is not valid JSON{where}")
        first = exc.errors()[0]
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        field = ".".join(loc) or None
        return reply(400, f"{field or 'body'}: {first.get('msg')}", field)

    async def http_error(_request: Any, exc: HTTPException) -> Response:
        return reply(exc.status_code, str(exc.detail))

    async def crashed(_request: Any, _exc: Exception) -> Response:
        return reply(500, "internal error (see the server log)")  # never the exception's text

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, crashed)


def guarded(app: Any, limits: HTTPSection, token: str | None,
            on_request: Callable[[str, int, float], None] | None = None) -> Guard:
    add_error_handlers(app)
    return Guard(app, limits, token, on_request)


def _uvicorn_config(app: Any, host: str, port: int) -> Any:
    import uvicorn

    # backlog 2048 (uvicorn's default) instead of http.server's 5: a burst of connections queues.
    # Ctrl-C waits at most SHUTDOWN_GRACE_S for requests in flight, then cancels them (uvicorn's
    # default waits for ever, so one long request kept the server up).
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                          timeout_keep_alive=30, backlog=2048, lifespan="on",
                          timeout_graceful_shutdown=SHUTDOWN_GRACE_S)


def warn_if_exposed(host: str, token: str | None) -> str | None:
    """The warning to print when a server is reachable beyond loopback with no token."""
    if token is None and not is_loopback(host):
        message = (f"serving on {host} without a token: anyone who can reach this address can use "
                   "it; set http.token_env (or --token-env) to require a bearer token")
        log.warning(message)
        return message
    return None


class ServerThread:
    """Serve an ASGI app with uvicorn in a background thread; ``port=0`` picks a free port."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        self.server = uvicorn.Server(_uvicorn_config(app, host, port))
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self.server.run, name="quillrl-http", daemon=True)
        self.host = host

    def start(self, timeout: float = 60.0) -> "ServerThread":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the HTTP server did not start on {self.host}")
            time.sleep(0.02)
        return self

    @property
    def port(self) -> int:
        return self.server.servers[0].sockets[0].getsockname()[1]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)


def run_server(app: Any, host: str, port: int,
               on_bound: Callable[[int], Awaitable[None] | None] | None = None) -> None:
    """Serve in the foreground until Ctrl-C; ``on_bound(port)`` runs once the socket is bound."""
    import socket

    import uvicorn

    from ..errors import ConfigError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot bind {host}:{port}: {exc}") from None
    sock.listen(2048)  # connections queue from now on, before uvicorn's loop starts accepting
    if on_bound is not None:
        on_bound(sock.getsockname()[1])
    server = uvicorn.Server(_uvicorn_config(app, host, port))
    server.run(sockets=[sock])
