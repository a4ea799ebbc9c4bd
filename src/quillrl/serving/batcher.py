"""Cross-client batching: many concurrent ``compare_many`` calls become one call on the judge.

The reward server queues each group's comparisons as its members arrive
(:meth:`BatchingJudge.submit`), or, with ``group.judge_on_arrival: false``, scores each completed
group in its own worker thread with the trainer's
:class:`~quillrl.scoring.group_rewards.GroupRewards`, which asks its judge for the group's
comparisons in one ``compare_many``. Either way the :class:`BatchingJudge` merges the comparisons
of every group in flight at that moment into one call on the real judge, up to ``max_batch``
pairs, waiting at most ``max_wait_s`` for more to arrive after the first. A local model then runs
one padded forward batch for many groups, and an OpenAI-compatible judge gets them all in flight
together.

Failures (docs/design.md, "Scale-out"): a call that raises, or judgments that come back invalid,
are retried up to ``retries`` times; what is still invalid after that is returned invalid, so
``GroupRewards`` flags those writing rewards missing and the mix fills them (the group mean of
the valid ones). A judge failure never fails the request.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable, Sequence

from ..cpu_threads import Recheck
from ..judges.base import Judge, Judgment, Pair, check_pairs, invalid_judgment

log = logging.getLogger(__name__)


class BatchingJudge(Judge):
    """A judge that batches concurrent ``compare_many`` calls from many threads into one.

    ``on_batch(pairs, failed)`` is called after every call on the inner judge (metrics).
    """

    def __init__(self, judge: Judge, max_batch: int = 64, max_wait_s: float = 0.02, retries: int = 1,
                 on_batch: Callable[[int, int], None] | None = None):
        self.inner, self.max_batch, self.max_wait_s, self.retries = judge, max_batch, max_wait_s, retries
        self.name = getattr(judge, "name", "judge")
        self.reads_principle = getattr(judge, "reads_principle", False)  # pass principles through
        self.on_batch = on_batch or (lambda *_: None)
        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        # this thread runs the judge: it re-checks torch's CPU threads (docs/design.md, "A busy machine")
        self._threads = Recheck()
        self._worker = threading.Thread(target=self._loop, name="quillrl-judge-batcher", daemon=True)
        self._worker.start()
        if hasattr(judge, "score"):  # a scalar reward model: GroupRewards' "scalar" strategy
            self.score = judge.score  # type: ignore[method-assign]

    def _compare_many(self, pairs: list[Pair]) -> list[Judgment]:
        return [f.result() for f in self.submit(pairs)]

    def submit(self, pairs: Sequence[Pair]) -> list[Future]:
        """Queue ``pairs`` without waiting: one future per pair, resolved with its
        :class:`Judgment` (never an exception; a failure is an invalid judgment). The reward
        server judges a group's comparisons so as its members arrive, in the same batches as
        every other group's."""
        futures = []
        for pair in check_pairs(pairs):
            future: Future = Future()
            if self._closed:  # shutting down: the pair fails now, rather than wait for ever
                future.set_result(invalid_judgment("the judge is closed (server shutdown)"))
            else:
                self._queue.put((pair, future))
            futures.append(future)
        return futures

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                left = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=max(left, 0)) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(item)
            self._threads.step()
            results = self._judge_with_retries([pair for pair, _ in batch])
            for (_, future), judgment in zip(batch, results):
                future.set_result(judgment)

    def _judge_with_retries(self, pairs: Sequence[Pair]) -> list[Judgment]:
        out: list[Judgment | None] = [None] * len(pairs)
        todo = list(range(len(pairs)))
        for attempt in range(self.retries + 1):
            try:
                got = self.inner.compare_many([pairs[i] for i in todo])
            except Exception as exc:  # noqa: BLE001 - a judge failure is a missing reward, not a crash
                log.warning("judge call of %d pairs failed (attempt %d): %s", len(todo), attempt + 1,
                            type(exc).__name__)
                got = [invalid_judgment(f"judge call failed: {type(exc).__name__}") for _ in todo]
            self.on_batch(len(todo), sum(not j.valid for j in got))
            for i, judgment in zip(todo, got):
                out[i] = judgment
            todo = [i for i in todo if not out[i].valid]  # type: ignore[union-attr]
            if not todo:
                break
        return out  # type: ignore[return-value]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._worker.join(timeout=30)
            while True:  # pairs queued behind the stop, or left when the worker outlasted the join
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None and not item[1].done():
                    item[1].set_result(invalid_judgment("the judge is closed (server shutdown)"))
            self.inner.close()
