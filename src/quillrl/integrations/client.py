"""A small HTTP client for ``quillrl serve-reward`` (httpx), shared by every adapter.

The bearer token is read from the environment variable the caller names (``token_env``), never
a default one, and it is never sent over plain http to a host beyond loopback unless
``allow_insecure=True`` (docs/design.md, "Scale-out").
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from ..errors import BackendError, ConfigError
from ..httpserve.http import is_loopback


def auth_headers(url: str, token_env: str | None, allow_insecure: bool = False) -> dict[str, str]:
    """``{"Authorization": "Bearer ..."}`` from ``$token_env``, or ``{}`` when none is named.

    >>> auth_headers("http://127.0.0.1:8100", None)
    {}
    """
    if token_env is None:
        return {}
    token = os.environ.get(token_env)
    if not token:
        raise ConfigError(f"token_env names ${token_env}, but that environment variable is unset or empty")
    parsed = urlparse(url)
    if parsed.scheme != "https" and not is_loopback(parsed.hostname or "") and not allow_insecure:
        raise ConfigError(f"refusing to send the token in ${token_env} over plain http to {parsed.hostname}; "
                          "use https, a loopback address, or allow_insecure=True")
    return {"Authorization": f"Bearer {token}"}


class RewardServerError(BackendError):
    """The reward server answered an error ``status`` (HTTP), or none (``status`` is None: it timed
    out or could not be reached; the httpx exception is the ``__cause__``). Adapters that must tell
    a conflict (409) from an outage from a bad request read ``status``."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class RewardClient:
    """``post(path, body)`` / ``await apost(path, body)`` to a reward server at ``url``."""

    def __init__(self, url: str, token_env: str | None = None, timeout: float = 600.0,
                 allow_insecure: bool = False):
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"the reward server URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.headers = auth_headers(self.url, token_env, allow_insecure)
        self.timeout = timeout

    def post(self, path: str, body: dict) -> Any:
        import httpx

        try:
            response = httpx.post(self.url + path, json=body, headers=self.headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise RewardServerError(f"reward server {self.url}{path}: {type(exc).__name__}: {exc}") from exc
        return _checked(response, self.url + path)

    async def apost(self, path: str, body: dict) -> Any:
        import httpx

        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(self.url + path, json=body, headers=self.headers)
        except httpx.HTTPError as exc:
            raise RewardServerError(f"reward server {self.url}{path}: {type(exc).__name__}: {exc}") from exc
        return _checked(response, self.url + path)


def _checked(response: Any, where: str) -> Any:
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except Exception:  # noqa: BLE001 - any body: report the status alone
            message = response.text[:200]
        raise RewardServerError(f"reward server {where} answered {response.status_code}: {message}",
                                response.status_code)
    return response.json()


def result_fields(result: dict) -> dict:
    """The numeric fields of one server answer (engines log them; strings break their tensors)."""
    return {"writing": float(result["writing"]), "passed": float(result["passed"]),
            "lambda": float(result["lambda"]), "writing_missing": float(result["writing_missing"]),
            "partial": float(result["partial"])}
