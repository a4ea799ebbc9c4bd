"""How many CPU threads torch uses, and how they wait, chosen for the machine as it is when a
quillrl command starts (docs/design.md, "A busy machine").

torch's CPU kernels run on an OpenMP team (libgomp). Between parallel regions its threads spin
for a while before they sleep (OMP_WAIT_POLICY=ACTIVE-like, GOMP_SPINCOUNT). On idle cores that
is the fastest choice; on cores another job uses, a spinning thread burns the time slice the
thread it waits for needs, and a step runs several times slower (issue 23, section 8: 2.8x beside
one CPU-bound job on two cores). So, unless the user chose (:data:`USER_VARS`), the command
measures the other work on its cores for :data:`SAMPLE_S` seconds before torch is loaded:

* idle: torch's defaults are left alone (passive waiting costs about 30% on idle cores);
* busy: ``OMP_NUM_THREADS`` = the free cores (at least 1) and ``OMP_WAIT_POLICY=PASSIVE``.

The wait policy is read once, when libgomp starts, so it must be set before ``import torch``;
the thread count can change later, but per thread: ``omp_set_num_threads`` sets the calling
thread's value, and ATen copies its global count only into a thread that has not yet run parallel
code, which is why :class:`ThreadGovernor` is called from the thread that runs torch.

Pure functions (:func:`parse_proc_stat`, :func:`other_busy_cores`, :func:`decide`) take the
numbers as arguments so they are tested without timing; :func:`configure` reads the machine.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping, MutableMapping

from .errors import ConfigError

# Any of these set by the user means: no measuring, no change (QUILLRL_THREADS=N asks for N threads).
USER_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "QUILLRL_THREADS")
# How long the start-up sample of /proc/stat lasts: long enough for a few scheduler ticks per core
# (USER_HZ is 100), short beside any command that loads a model.
SAMPLE_S = 0.2
# Other work of at least this many cores' worth, rounded, takes a core: a burst of 0.3 cores (a
# shell, an editor) leaves the defaults; a job near one full core takes one.
TAKEN_AT = 0.5

# /proc/stat columns: user nice system idle iowait irq softirq steal (guest is inside user).
_IDLE_COLUMNS = (3, 4)
_COUNTED_COLUMNS = 8


@dataclass(frozen=True)
class ThreadChoice:
    """What :func:`decide` chose; ``threads`` None means torch's default count."""

    threads: int | None
    passive: bool
    cores: int  # cores this process may use (affinity, capped by a cgroup quota)
    other_busy: float | None  # cores' worth of other work measured; None: not measured
    reason: str
    by: str = "quillrl"  # who chose: "quillrl" (measured), "user" (a variable), "nobody" (not measured)

    def as_dict(self) -> dict:
        out = asdict(self)
        if self.other_busy is not None:
            out["other_busy"] = round(self.other_busy, 2)
        return out


def parse_proc_stat(text: str) -> dict[int, tuple[int, int]]:
    """Per-CPU ``(busy, total)`` ticks from the text of ``/proc/stat``; steal counts as busy.

    >>> parse_proc_stat("cpu  9 0 0 9 0 0 0 0 0 0\\ncpu0 3 1 2 10 4 0 0 1 0 0\\nintr 5")
    {0: (7, 21)}
    """
    out = {}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        ticks = [int(x) for x in rest.split()[:_COUNTED_COLUMNS]]
        total = sum(ticks)
        idle = sum(ticks[i] for i in _IDLE_COLUMNS if i < len(ticks))
        out[int(name[3:])] = (total - idle, total)
    return out


def other_busy_cores(before: Mapping[int, tuple[int, int]], after: Mapping[int, tuple[int, int]],
                     cpus: set[int] | frozenset[int], own_cores: float = 0.0) -> float:
    """Cores' worth of work on ``cpus`` between two samples, less this process's own.

    busy = sum over the cpus of (busy ticks elapsed / all ticks elapsed); ``own_cores`` is this
    process's CPU time over the wall time between the samples (0 while it only slept).

    >>> other_busy_cores({0: (0, 0), 1: (0, 0)}, {0: (95, 100), 1: (10, 100)}, {0, 1})
    1.05
    >>> other_busy_cores({0: (0, 0)}, {0: (100, 100)}, {0}, own_cores=1.0)
    0.0
    """
    busy = 0.0
    for cpu in cpus:
        if cpu not in before or cpu not in after:
            continue
        d_busy, d_total = after[cpu][0] - before[cpu][0], after[cpu][1] - before[cpu][1]
        if d_total > 0:
            busy += d_busy / d_total
    return round(max(0.0, busy - own_cores), 4)


def free_cores(other_busy: float, cores: int, affinity_cores: int) -> int:
    """Cores left to us: other work counts as a core taken from :data:`TAKEN_AT` of one up
    (taken = floor(other_busy + 1 − TAKEN_AT)); free = min(cores, affinity_cores − taken), ≥ 1.

    >>> free_cores(0.4, 2, 2), free_cores(0.6, 2, 2), free_cores(3.0, 2, 2)
    (2, 1, 1)
    """
    taken = math.floor(other_busy + 1 - TAKEN_AT)
    return max(1, min(cores, affinity_cores - taken))


def decide(env: Mapping[str, str], cores: int, other_busy: float | None,
           affinity_cores: int | None = None) -> ThreadChoice:
    """The thread count and wait policy for a process that may use ``cores`` cores.

    ``affinity_cores`` (default ``cores``) is how many CPUs it may run on, which is more than
    ``cores`` under a cgroup quota. Rules, in order:

    * a user variable in ``env`` (:data:`USER_VARS`): nothing changes, or ``QUILLRL_THREADS=N``
      threads;
    * taken = the other work rounded (``other_busy`` + 1 - :data:`TAKEN_AT`, floored);
      free = min(cores, affinity_cores - taken), at least 1;
    * free < cores (another job takes cores we could use): free threads, passive waiting;
    * a quota below the CPUs we may run on: ``cores`` threads, default waiting (torch would
      start one thread per CPU and be throttled);
    * otherwise: torch's defaults.

    >>> decide({}, 2, 1.0).threads, decide({}, 2, 1.0).passive
    (1, True)
    >>> decide({}, 2, 0.2).threads is None
    True
    >>> decide({"OMP_NUM_THREADS": "2"}, 2, 1.0).reason
    'set by the user: OMP_NUM_THREADS=2'
    """
    affinity_cores = cores if affinity_cores is None else affinity_cores
    user = [f"{k}={env[k]}" for k in USER_VARS if env.get(k, "") != ""]
    if user:
        wanted = env.get("QUILLRL_THREADS", "")
        threads = None
        if wanted:
            if not wanted.isdigit() or int(wanted) < 1:
                raise ConfigError(f"QUILLRL_THREADS must be a whole number of threads >= 1, got {wanted!r}; "
                                  "unset it to let quillrl choose")
            # OMP_NUM_THREADS, where also set, is what libgomp reads: it wins
            threads = None if env.get("OMP_NUM_THREADS", "") != "" else int(wanted)
        return ThreadChoice(threads, False, cores, other_busy, "set by the user: " + ", ".join(user), "user")
    if other_busy is None:
        return ThreadChoice(None, False, cores, None, "not measured (no /proc/stat): torch's defaults", "nobody")
    free = free_cores(other_busy, cores, affinity_cores)
    if free < cores:
        return ThreadChoice(free, True, cores, other_busy,
                            f"busy: {other_busy:.2f} cores of other work on {affinity_cores}")
    if cores < affinity_cores:
        return ThreadChoice(cores, False, cores, other_busy,
                            f"cgroup quota of {cores} cores on {affinity_cores} CPUs")
    return ThreadChoice(None, False, cores, other_busy, "idle: torch's defaults")


def cgroup_cores(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The cgroup CPU quota in whole cores (rounded up), or None where there is none.

    Reads cgroup v2's ``cpu.max`` ("max 100000" or "150000 100000"), else v1's
    ``cpu/cpu.cfs_quota_us`` and ``cpu.cfs_period_us``.
    """
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1") or not quota.lstrip("-").isdigit() or not period.isdigit() or int(period) <= 0:
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def allowed_cpus() -> set[int]:
    """The CPUs this process may run on (``os.sched_getaffinity`` where the OS has it)."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(0))
    return set(range(os.cpu_count() or 1))


def read_proc_stat(path: str = "/proc/stat") -> dict[int, tuple[int, int]] | None:
    try:
        return parse_proc_stat(Path(path).read_text())
    except (OSError, ValueError):
        return None


def own_cpu_seconds() -> float:
    """CPU time of this process, all its threads (children not included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_other_busy(cpus: set[int], sample_s: float = SAMPLE_S) -> float | None:
    """Cores' worth of other work on ``cpus`` over ``sample_s`` seconds; None without /proc/stat."""
    before, own0, t0 = read_proc_stat(), own_cpu_seconds(), time.monotonic()
    if before is None:
        return None
    time.sleep(sample_s)
    after, own1, t1 = read_proc_stat(), own_cpu_seconds(), time.monotonic()
    if after is None:
        return None
    return other_busy_cores(before, after, cpus, (own1 - own0) / max(t1 - t0, 1e-6))


_CHOICE: ThreadChoice | None = None


def configure(environ: MutableMapping[str, str] | None = None, sample_s: float = SAMPLE_S,
              measure: Callable[[set[int], float], float | None] = measure_other_busy) -> ThreadChoice:
    """Decide once per process and write the choice into ``environ`` (default ``os.environ``)
    before torch is loaded; later calls return the first choice. Called by the CLI's ``main``.

    Where torch is already loaded, nothing changes: libgomp has read its variables.
    """
    global _CHOICE
    if _CHOICE is not None:
        return _CHOICE
    environ = os.environ if environ is None else environ
    cpus = allowed_cpus()
    quota = cgroup_cores()
    cores = min(len(cpus), quota) if quota else len(cpus)
    if "torch" in sys.modules:
        choice = ThreadChoice(None, False, cores, None, "torch was already loaded: left as it is", "nobody")
    elif any(environ.get(k, "") != "" for k in USER_VARS):
        choice = decide(environ, cores, None, len(cpus))
    else:
        choice = decide(environ, cores, measure(cpus, sample_s), len(cpus))
    if choice.threads is not None:
        environ["OMP_NUM_THREADS"] = str(choice.threads)
    if choice.passive:
        environ["OMP_WAIT_POLICY"] = "PASSIVE"
    _CHOICE = choice
    return choice


def current_choice() -> ThreadChoice | None:
    """The choice :func:`configure` made in this process, or None where it was not called."""
    return _CHOICE


class ThreadGovernor:
    """Re-checks the machine now and then in a long-lived process (``train policy``, the servers)
    and moves torch's thread count between 1 and a ceiling as other work comes and goes.

    Call :meth:`step` from the thread that runs torch's work (a training step, a batch): the
    OpenMP thread count is per thread, so ``torch.set_num_threads`` from a timer thread would not
    reach a thread already computing (tests/test_cpu_threads.py shows it). It costs one read of /proc/stat per ``every_s`` seconds: the previous read is the
    start of the next sample, so nothing sleeps. The wait policy chosen at start stays (libgomp
    reads it once): a process that started on idle cores keeps spinning threads, and lowering
    their count is what stops them taking a busy core's time.

    ``set_threads`` is ``torch.set_num_threads`` (injected, so this layer does not import torch);
    ``ceiling`` is the most threads it sets (the count at start, or the cores where it started
    busy). It acts only where quillrl made the choice, never over a user's variables.
    """

    def __init__(self, set_threads: Callable[[int], None], ceiling: int, every_s: float = 30.0,
                 cpus: set[int] | None = None,
                 read_stat: Callable[[], dict[int, tuple[int, int]] | None] = read_proc_stat,
                 own_cpu: Callable[[], float] = own_cpu_seconds,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.set_threads, self.ceiling, self.every_s = set_threads, max(1, ceiling), every_s
        self.cpus = allowed_cpus() if cpus is None else cpus
        self.read_stat, self.own_cpu, self.clock = read_stat, own_cpu, clock
        self.threads = self.ceiling
        self.changes = 0
        self._last = (self.read_stat(), self.own_cpu(), self.clock())

    @classmethod
    def for_this_process(cls, torch_module, every_s: float = 30.0) -> "ThreadGovernor | None":
        """A governor when quillrl chose the threads in this process (not the user), else None."""
        choice = current_choice()
        if choice is None or choice.by != "quillrl":
            return None
        ceiling = choice.cores if choice.passive else torch_module.get_num_threads()
        governor = cls(torch_module.set_num_threads, ceiling, every_s)
        governor.threads = torch_module.get_num_threads()
        return governor

    def step(self) -> int | None:
        """Re-check if ``every_s`` has passed; returns the new thread count when it changed."""
        now = self.clock()
        stat0, own0, t0 = self._last
        if now - t0 < self.every_s:
            return None
        stat1, own1 = self.read_stat(), self.own_cpu()
        self._last = (stat1, own1, now)
        if stat0 is None or stat1 is None:
            return None
        other = other_busy_cores(stat0, stat1, self.cpus, (own1 - own0) / max(now - t0, 1e-6))
        wanted = free_cores(other, self.ceiling, len(self.cpus))
        if wanted == self.threads:
            return None
        self.set_threads(wanted)
        self.threads = wanted
        self.changes += 1
        return wanted


class Recheck:
    """What a loop that runs torch's work calls once per step or batch (``train``'s callback, the
    servers' worker threads): a :class:`ThreadGovernor` made in that thread once torch is loaded,
    and only where quillrl made the choice at start; otherwise a no-op costing a dict lookup."""

    def __init__(self, every_s: float = 30.0) -> None:
        self.every_s = every_s
        self.governor: ThreadGovernor | None = None
        self._off = False

    def step(self) -> int | None:
        """Re-check when due; the new thread count when it changed, else None."""
        if self._off:
            return None
        if self.governor is None:
            choice, torch = current_choice(), sys.modules.get("torch")
            if choice is None or choice.by != "quillrl":
                self._off = True
            elif torch is not None:
                self.governor = ThreadGovernor.for_this_process(torch, self.every_s)
            return None
        changed = self.governor.step()
        if changed is not None:
            logging.getLogger(__name__).info("other work on our cores changed: torch now uses %d threads",
                                             changed)
        return changed
