"""A private asyncio event loop in a daemon thread, for sync facades over async clients.

``asyncio.run`` cannot be called from code that already runs inside an event loop (a notebook,
an async web app, a trainer callback running on a loop's thread). Running our coroutines on a
loop that we own, in a thread of our own, works from anywhere: the caller's thread only blocks
on a ``concurrent.futures.Future``; async callers await it with :meth:`LoopThread.submit_async`
without blocking their loop. One loop per backend also keeps the HTTP client (bound to the loop
it was created on) on a single loop for its whole life.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, Coroutine

from ..errors import BackendError


class LoopThread:
    """Starts its loop on first use; :meth:`close` stops it and joins the thread."""

    def __init__(self, name: str = "quillrl-backend-loop"):
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def submit(self, coro: Coroutine) -> concurrent.futures.Future:
        if threading.current_thread() is self._thread:
            coro.close()
            raise BackendError("a backend's sync method was called from its own event loop; "
                               "await its async method (agenerate/achoice_probs) instead")
        return asyncio.run_coroutine_threadsafe(coro, self._ensure())

    def run(self, coro: Coroutine) -> Any:
        """Run a coroutine on the private loop and wait for its result (from any thread)."""
        return self.submit(coro).result()

    async def submit_async(self, coro: Coroutine) -> Any:
        """Await a coroutine that runs on the private loop, from another event loop."""
        return await asyncio.wrap_future(self.submit(coro))

    def close(self, final: Coroutine | None = None) -> None:
        """Run ``final`` (e.g. closing a client) on the loop, then stop the loop."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None:
            if final is not None:
                final.close()
            return
        if final is not None:
            asyncio.run_coroutine_threadsafe(final, loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if thread is threading.current_thread():
            return  # closing from inside the loop: it stops when this callback returns
        if thread is not None:
            thread.join(timeout=10)
        if not loop.is_running():
            loop.close()
