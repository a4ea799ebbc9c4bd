"""The reward server's Prometheus metrics, on a registry of its own (one per server).

``quillrl_requests_total{path,status}``, ``quillrl_request_seconds{path}`` (histogram),
``quillrl_judge_batch_pairs`` (histogram of pairs per judge call), ``quillrl_judge_failures_total``
(pairs still invalid after a call), ``quillrl_comparisons_unused_total`` (judged as a group
arrived, then not needed by it: a pivot that a later member displaced),
``quillrl_groups_total{outcome=complete|partial}``,
``quillrl_writing_missing_total``, ``quillrl_open_groups``, ``quillrl_reward_members_total{outcome}``
(each member a request brought: ``joined``, ``replayed``, ``taken_over``, or refused:
``refused_digest``, ``refused_slot``, ``refused_size``). A request whose client went away before
its answer is counted with status 499 (nginx's "client closed request"), not 500.

What went wrong for a client is also counted by name (docs/design.md, "Queue bound"), so that a
dashboard need not know which status means what:

* ``quillrl_requests_timed_out_total{reason}``: ``group``, a request answered from a group that
  its timeout closed (``partial``, or a server shutdown); ``request``, no answer within
  ``http.request_timeout_s`` (504); ``body``, a body that arrived too slowly (408);
* ``quillrl_requests_shed_total``: refused at capacity (``http.max_inflight``), 503 with
  ``Retry-After``;
* ``quillrl_client_disconnects_total``: the client left before its answer (status 499).
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class RewardMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("quillrl_requests", "HTTP requests answered", ["path", "status"], registry=r)
        self.latency = Histogram("quillrl_request_seconds", "time to answer a request", ["path"], registry=r)
        self.batch_pairs = Histogram("quillrl_judge_batch_pairs", "pairs per compare_many call on the judge",
                                     buckets=BATCH_BUCKETS, registry=r)
        self.judge_failures = Counter("quillrl_judge_failures", "judgments invalid or failed after a call",
                                      registry=r)
        self.unused = Counter("quillrl_comparisons_unused", "comparisons judged as a group arrived "
                              "that the complete group did not need", registry=r)
        self.groups = Counter("quillrl_groups", "groups closed, by outcome", ["outcome"], registry=r)
        self.missing = Counter("quillrl_writing_missing", "writing rewards missing after retries "
                               "(filled with the group mean)", registry=r)
        self.invalid = Counter("quillrl_judge_invalid", "invalid judgments behind scored groups", registry=r)
        self.members = Counter("quillrl_reward_members", "group members by what the barrier did with "
                               "them", ["outcome"], registry=r)
        self.timed_out = Counter("quillrl_requests_timed_out", "requests answered from a timed-out "
                                 "group (group), or timed out themselves (request: 504, body: 408)",
                                 ["reason"], registry=r)
        self.shed = Counter("quillrl_requests_shed", "requests refused at capacity (503, Retry-After)",
                            registry=r)
        self.disconnects = Counter("quillrl_client_disconnects", "requests whose client left before "
                                   "the answer", registry=r)
        for reason in TIMED_OUT:  # every series exists from the start, at 0
            self.timed_out.labels(reason)
        self._open = Gauge("quillrl_open_groups", "groups waiting for members", registry=r)

    def request(self, path: str, status: int, seconds: float) -> None:
        path = path if path in KNOWN_PATHS else "other"  # bounded label values
        self.requests.labels(path, str(status)).inc()
        self.latency.labels(path).observe(seconds)
        if status == 503:
            self.shed.inc()
        elif status == 504:
            self.timed_out.labels("request").inc()
        elif status == 408:
            self.timed_out.labels("body").inc()
        elif status == 499:
            self.disconnects.inc()

    def answered_partial(self) -> None:
        """A request answered from a group that its timeout closed."""
        self.timed_out.labels("group").inc()

    def member(self, outcome: str) -> None:
        self.members.labels(outcome).inc()

    def judge_batch(self, pairs: int, failed: int) -> None:
        self.batch_pairs.observe(pairs)
        self.judge_failures.inc(failed)

    def comparisons_unused(self, count: int) -> None:
        self.unused.inc(count)

    def group_closed(self, group) -> None:
        self.groups.labels("partial" if group.partial else "complete").inc()

    def group_scored(self, missing: int, invalid: int) -> None:
        self.missing.inc(missing)
        self.invalid.inc(invalid)

    def open_groups(self, read: Callable[[], int]) -> None:
        self._open.set_function(read)

    def summary(self) -> dict:
        """Totals for the CLI's closing JSON line."""
        return {"requests": _total(self.requests), "groups_complete": _total(self.groups, outcome="complete"),
                "groups_partial": _total(self.groups, outcome="partial"),
                "writing_missing": _total(self.missing), "judge_failures": _total(self.judge_failures),
                "comparisons_unused": _total(self.unused),
                "members_refused": sum(_total(self.members, outcome=o) for o in REFUSED),
                "members_replayed": _total(self.members, outcome="replayed"),
                "requests_timed_out": _total(self.timed_out),
                **{f"requests_timed_out_{r}": _total(self.timed_out, reason=r) for r in TIMED_OUT},
                "requests_shed": _total(self.shed), "client_disconnects": _total(self.disconnects)}

    def render(self) -> bytes:
        return generate_latest(self.registry)


TIMED_OUT = ("group", "request", "body")
REFUSED = ("refused_digest", "refused_slot", "refused_size")
KNOWN_PATHS = {"/v1/rewards", "/openrlhf", "/get_reward", "/slime", "/slime/group", "/health", "/metrics"}


def _total(counter: Counter, **labels: str) -> int:
    """A counter's value summed over its label sets that match ``labels``."""
    return int(sum(sample.value for metric in counter.collect() for sample in metric.samples
                   if sample.name.endswith("_total")
                   and all(sample.labels.get(k) == v for k, v in labels.items())))
