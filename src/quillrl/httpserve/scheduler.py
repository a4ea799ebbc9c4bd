"""A fair batching scheduler in front of one in-process backend (``quillrl serve``).

A local model runs one ``generate`` call at a time, but a call can carry many prompts at little
more than the cost of one (a padded batch). So the scheduler's thread takes the prompts of every
waiting request whose :class:`~quillrl.backends.base.SamplingParams` equal the oldest request's,
*one prompt per request in turn* (round-robin), up to ``max_batch`` prompts, and runs them as one
call. A request with 1,000 prompts therefore shares each batch with a 1-prompt request that
arrives after it, instead of holding the model until it is done; requests with other settings
get their turn as the rotation reaches them.

Batching changes which prompts share a padded batch, never the settings: greedy decoding gives
the same text as alone (up to float noise of padding), and a seeded call seeds the whole batch.

Abandoned work is dropped. When the awaiting request is cancelled (its client disconnected, or
it timed out: ``Guard`` cancels the handler), its prompts not yet batched leave the queue, and a
backend whose ``generate`` takes ``cancelled=`` (``LocalBackend``) stops generating its rows in
the running batch at the next token. ``close`` (Ctrl-C) cancels everything, so shutdown waits
for one decoding step, not for the batch.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..cpu_threads import Recheck


@dataclass(eq=False)
class _Job:
    prompts: list
    params: Any
    future: Future = field(default_factory=Future)
    results: list = field(default_factory=list)
    next: int = 0  # prompts handed to a batch so far
    done: int = 0
    cancelled: bool = False  # its request is gone: drop what is queued, stop what runs


class FairScheduler:
    """``await scheduler.generate(prompts, params)`` from any event loop; one worker thread."""

    def __init__(self, backend: Any, max_batch: int = 32):
        self.backend, self.max_batch = backend, max_batch
        self._jobs: deque[_Job] = deque()  # requests with prompts not yet handed to a batch
        self._cond = threading.Condition()
        self._running: list[_Job] = []  # the jobs of the batch being generated
        self._closed = False
        self.batches = 0  # generate calls made (the bench reads it)
        self.cancelled_prompts = 0  # prompts of abandoned requests dropped before or while running
        try:
            self._can_cancel = "cancelled" in inspect.signature(backend.generate).parameters
        except (TypeError, ValueError):
            self._can_cancel = False
        # this thread runs the model: it re-checks torch's CPU threads (docs/design.md, "A busy machine")
        self._threads = Recheck()
        self._worker = threading.Thread(target=self._loop, name="quillrl-serve-scheduler", daemon=True)
        self._worker.start()

    async def generate(self, prompts: Sequence[Any], params: Any) -> list:
        job = _Job(list(prompts), params)
        job.results = [None] * len(job.prompts)
        if not job.prompts:
            return []
        with self._cond:
            if self._closed:
                raise RuntimeError("the server is shutting down")
            self._jobs.append(job)
            self._cond.notify()
        try:
            return await asyncio.wrap_future(job.future)
        except asyncio.CancelledError:
            self._cancel(job)
            raise

    def _cancel(self, job: _Job) -> None:
        """Drop a job's queued prompts; its rows in a running batch stop at the next token."""
        with self._cond:
            if job.cancelled or (job.future.done() and not job.future.cancelled()):
                return  # already dropped, or already answered
            job.cancelled = True
            self.cancelled_prompts += len(job.prompts) - job.done
            if job in self._jobs:
                self._jobs.remove(job)
        job.future.cancel()

    def _next_batch(self) -> tuple[Any, list[tuple[_Job, int]]]:
        """Under the lock: the oldest job's settings, and prompts taken round-robin."""
        params = self._jobs[0].params
        jobs = [j for j in self._jobs if j.params == params]
        taken: list[tuple[_Job, int]] = []
        while len(taken) < self.max_batch and any(j.next < len(j.prompts) for j in jobs):
            for job in jobs:
                if job.next < len(job.prompts) and len(taken) < self.max_batch:
                    taken.append((job, job.next))
                    job.next += 1
        for job in jobs:
            if job.next == len(job.prompts):
                self._jobs.remove(job)
        if self._jobs and self._jobs[0] is jobs[0]:
            self._jobs.rotate(-1)  # the next batch starts from another request's settings
        return params, taken

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                params, taken = self._next_batch()
                self._running = [j for j in {id(j): j for j, _ in taken}.values()]
            self._threads.step()
            try:
                batch = [job.prompts[i] for job, i in taken]
                if self._can_cancel:
                    gens = self.backend.generate(batch, params,
                                                 cancelled=lambda row: taken[row][0].cancelled)
                else:
                    gens = self.backend.generate(batch, params)
            except BaseException as exc:  # noqa: BLE001 - the requests in this batch fail, others go on
                for job in {id(j): j for j, _ in taken}.values():
                    with self._cond:
                        if job in self._jobs:
                            self._jobs.remove(job)
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            self.batches += 1
            for (job, i), gen in zip(taken, gens):
                if job.cancelled:
                    continue
                job.results[i] = gen
                job.done += 1
                if job.done == len(job.prompts) and not job.future.done():
                    job.future.set_result(job.results)

    def close(self, timeout: float = 30.0) -> None:
        """Stop: every waiting or running request is cancelled, then the worker is joined (a
        backend that cannot stop mid-batch may take up to ``timeout`` to finish it)."""
        with self._cond:
            self._closed = True
            jobs = list(self._jobs)
            self._cond.notify_all()
        for job in jobs:
            self._cancel(job)
        self._running_cancel_all()
        self._worker.join(timeout=timeout)

    def _running_cancel_all(self) -> None:
        with self._cond:
            running = list(self._running)
        for job in running:
            self._cancel(job)
