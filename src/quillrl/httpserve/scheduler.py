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
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Sequence


@dataclass(eq=False)
class _Job:
    prompts: list
    params: Any
    future: Future = field(default_factory=Future)
    results: list = field(default_factory=list)
    next: int = 0  # prompts handed to a batch so far
    done: int = 0


class FairScheduler:
    """``await scheduler.generate(prompts, params)`` from any event loop; one worker thread."""

    def __init__(self, backend: Any, max_batch: int = 32):
        self.backend, self.max_batch = backend, max_batch
        self._jobs: deque[_Job] = deque()  # requests with prompts not yet handed to a batch
        self._cond = threading.Condition()
        self._closed = False
        self.batches = 0  # generate calls made (the bench reads it)
        self._worker = threading.Thread(target=self._loop, name="quillrl-serve-scheduler", daemon=True)
        self._worker.start()

    async def generate(self, prompts: Sequence[Any], params: Any) -> list:
        job = _Job(list(prompts), params)
        job.results = [None] * len(job.prompts)
        if not job.prompts:
            return []
        with self._cond:
            self._jobs.append(job)
            self._cond.notify()
        return await asyncio.wrap_future(job.future)

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
            try:
                gens = self.backend.generate([job.prompts[i] for job, i in taken], params)
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
                job.results[i] = gen
                job.done += 1
                if job.done == len(job.prompts) and not job.future.done():
                    job.future.set_result(job.results)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._worker.join(timeout=30)
