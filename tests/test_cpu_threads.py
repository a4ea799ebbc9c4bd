"""The CPU thread choice at start and its re-check (docs/design.md, "A busy machine"): the decision
from injected samples, the user's variables, a real CPU-bound neighbour, and the fact the
re-check rests on (torch's thread count is per thread)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from quillrl import cpu_threads
from quillrl.cpu_threads import (USER_VARS, ThreadGovernor, cgroup_cores, decide, other_busy_cores,
                                 parse_proc_stat)
from quillrl.errors import ConfigError

SRC = str(Path(cpu_threads.__file__).resolve().parents[1])
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in USER_VARS}


@pytest.fixture(autouse=True)
def _fresh_choice(monkeypatch):
    monkeypatch.setattr(cpu_threads, "_CHOICE", None)


# -- the pure decision ----------------------------------------------------------------------------

def test_parse_proc_stat_counts_iowait_as_idle_and_steal_as_busy():
    text = ("cpu  1 1 1 1 1 1 1 1 0 0\n"
            "cpu0 100 5 20 300 40 1 2 7 9 0\n"   # busy 100+5+20+1+2+7 = 135, total 475 (guest in user)
            "cpu1 0 0 0 10 0 0 0 0\n"
            "ctxt 99\n")
    assert parse_proc_stat(text) == {0: (135, 475), 1: (0, 10)}


def test_other_busy_counts_only_allowed_cpus_and_drops_our_own_time():
    before = {0: (0, 0), 1: (0, 0), 2: (0, 0)}
    after = {0: (100, 100), 1: (50, 100), 2: (100, 100)}
    assert other_busy_cores(before, after, {0, 1}) == 1.5
    assert other_busy_cores(before, after, {0, 1}, own_cores=1.0) == 0.5
    assert other_busy_cores(before, after, {0, 1}, own_cores=3.0) == 0.0
    assert other_busy_cores(before, after, {0, 7}) == 1.0  # a CPU missing from a sample is skipped


@pytest.mark.parametrize("cores, other, threads, passive", [
    (2, 0.0, None, False),   # idle: torch's defaults (passive costs ~30% there)
    (2, 0.49, None, False),  # a shell's worth of noise: still idle
    (2, 0.5, 1, True),       # half a core or more takes a core
    (2, 1.0, 1, True),       # one CPU-bound job on two cores (issue 23's case)
    (2, 3.7, 1, True),       # overloaded: never fewer than one thread
    (8, 2.2, 6, True),
    (8, 2.6, 5, True),
    (1, 1.0, None, False),   # one core: nothing to take back (1 thread already), defaults
])
def test_decide_from_measured_other_work(cores, other, threads, passive):
    choice = decide({}, cores, other)
    assert (choice.threads, choice.passive, choice.by) == (threads, passive, "quillrl")


def test_decide_under_a_cgroup_quota():
    # 2 cores of quota on 8 CPUs: 2 threads, not torch's 8 (throttled); waiting left as it is
    choice = decide({}, 2, 0.0, affinity_cores=8)
    assert (choice.threads, choice.passive) == (2, False)
    # with 7 CPUs of 8 busy, only one is free: the quota does not matter, the neighbour does
    choice = decide({}, 2, 7.0, affinity_cores=8)
    assert (choice.threads, choice.passive) == (1, True)


@pytest.mark.parametrize("var, value", [("OMP_NUM_THREADS", "2"), ("OMP_WAIT_POLICY", "ACTIVE"),
                                        ("GOMP_SPINCOUNT", "1000"), ("QUILLRL_THREADS", "3")])
def test_decide_respects_each_user_variable(var, value):
    choice = decide({var: value}, 2, 1.9)
    assert choice.by == "user" and not choice.passive
    assert choice.threads == (3 if var == "QUILLRL_THREADS" else None)
    assert f"{var}={value}" in choice.reason


def test_omp_num_threads_wins_over_quillrl_threads(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    env = {"OMP_NUM_THREADS": "2", "QUILLRL_THREADS": "1"}
    choice = cpu_threads.configure(env, measure=lambda cpus, s: 2.0)
    assert (choice.threads, choice.by) == (None, "user")
    assert env == {"OMP_NUM_THREADS": "2", "QUILLRL_THREADS": "1"}


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_bad_quillrl_threads_is_refused_saying_what_to_change(value):
    with pytest.raises(ConfigError, match="QUILLRL_THREADS must be a whole number"):
        decide({"QUILLRL_THREADS": value}, 2, None)


def test_cgroup_quota_v2_and_v1(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cores(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cores(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cores(tmp_path) == 1
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cores(tmp_path) is None


# -- configure: what it writes into the environment -----------------------------------------------

def test_configure_busy_writes_threads_and_passive(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(cpu_threads, "allowed_cpus", lambda: {0, 1})
    monkeypatch.setattr(cpu_threads, "cgroup_cores", lambda: None)
    env: dict[str, str] = {}
    choice = cpu_threads.configure(env, measure=lambda cpus, s: 1.0)
    assert env == {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    assert cpu_threads.current_choice() is choice
    assert cpu_threads.configure({}, measure=lambda cpus, s: 0.0) is choice  # once per process


def test_configure_idle_writes_nothing(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(cpu_threads, "allowed_cpus", lambda: {0, 1})
    monkeypatch.setattr(cpu_threads, "cgroup_cores", lambda: None)
    env: dict[str, str] = {}
    assert cpu_threads.configure(env, measure=lambda cpus, s: 0.1).threads is None
    assert env == {}


@pytest.mark.parametrize("var", USER_VARS)
def test_configure_never_measures_or_overrides_a_user_variable(monkeypatch, var):
    monkeypatch.delitem(sys.modules, "torch", raising=False)

    def must_not_measure(cpus, s):
        raise AssertionError("measured although the user chose")

    value = "3" if var in ("OMP_NUM_THREADS", "QUILLRL_THREADS", "GOMP_SPINCOUNT") else "ACTIVE"
    env = {var: value}
    choice = cpu_threads.configure(env, measure=must_not_measure)
    assert choice.by == "user"
    expected = {var: value, "OMP_NUM_THREADS": "3"} if var == "QUILLRL_THREADS" else {var: value}
    assert env == expected


def test_configure_after_torch_is_loaded_changes_nothing(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", object())
    env: dict[str, str] = {}
    choice = cpu_threads.configure(env, measure=lambda cpus, s: 2.0)
    assert choice.by == "nobody" and env == {}


# -- in a fresh process: the order of loading, and a real neighbour -------------------------------

def _python(code: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": SRC},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_cli_does_not_load_torch_before_main_decides():
    # main() configures before app(); that works only while importing the CLI leaves torch unloaded
    out = _python("import sys, quillrl.cli; print('torch' in sys.modules)", CLEAN_ENV)
    assert out.strip() == "False"


def test_the_choice_reaches_torch_when_made_before_import():
    code = ("import os; from quillrl import cpu_threads\n"
            "cpu_threads.configure(measure=lambda cpus, s: float(len(cpus)))\n"  # every core busy
            "import torch; print(torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'])")
    assert _python(code, CLEAN_ENV).split() == ["1", "PASSIVE"]


def test_a_cpu_bound_neighbour_makes_the_start_pick_fewer_threads():
    """A real neighbour, not injected numbers: whatever else the machine runs, a runnable burner
    keeps at least one of our CPUs busy, so the measured other work is >= 0.5 core."""
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        deadline = time.monotonic() + 30
        while _cpu_seconds(burner.pid) < 0.2:  # it runs: its loop has had CPU time
            assert time.monotonic() < deadline, "the CPU burner never ran"
            time.sleep(0.05)
        code = ("import json; from quillrl import cpu_threads\n"
                "print(json.dumps(cpu_threads.configure(sample_s=0.5).as_dict()))")
        choice = json.loads(_python(code, CLEAN_ENV))
    finally:
        burner.kill()
        burner.wait()
    assert choice["by"] == "quillrl" and choice["other_busy"] >= 0.5, choice
    # one core taken: fewer threads than cores, unless there is one core, or a cgroup quota below
    # the CPUs leaves enough of them free (then the quota's count: decide's own tests cover that)
    if 1 < choice["cores"] == len(cpu_threads.allowed_cpus()):
        assert choice["passive"] and choice["threads"] < choice["cores"], choice


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_cli_summary_reports_the_choice(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(json.dumps({"id": "t1", "prompt": "Say hi.", "constraints": []}) + "\n")
    responses = tmp_path / "responses.jsonl"
    responses.write_text(json.dumps({"id": "t1", "response": "hi"}) + "\n")
    env = {**CLEAN_ENV, "QUILLRL_THREADS": "1"}
    out = _python("import sys; from quillrl.cli import main; sys.argv[1:] = "
                  f"['verify', {str(tasks)!r}, {str(responses)!r}]; main()", env)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["cpu_threads"]["threads"] == 1 and summary["cpu_threads"]["by"] == "user"


def test_cli_refuses_a_bad_quillrl_threads_in_one_line():
    result = subprocess.run([sys.executable, "-m", "quillrl.cli", "verify", "a", "b"],
                            env={**CLEAN_ENV, "PYTHONPATH": SRC, "QUILLRL_THREADS": "lots"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "QUILLRL_THREADS must be a whole number" in result.stderr and "Traceback" not in result.stderr


# -- the re-check in long-lived processes ---------------------------------------------------------

class _Machine:
    """Fake /proc/stat, own CPU time and clock for two CPUs: ``run(seconds, other, own)``
    advances time with ``other`` cores of other work and ``own`` of ours."""

    def __init__(self):
        self.t, self.own, self.busy = 0.0, 0.0, 0.0

    def run(self, seconds, other, own):
        self.t += seconds
        self.own += own * seconds
        self.busy += (other + own) * seconds

    def stat(self):
        ticks = int(self.t * 100)
        per_cpu = int(self.busy * 100 / 2)
        return {0: (per_cpu, ticks), 1: (per_cpu, ticks)}


def test_governor_lowers_and_raises_torch_threads_as_a_neighbour_comes_and_goes():
    m, calls = _Machine(), []
    gov = ThreadGovernor(calls.append, ceiling=2, every_s=30, cpus={0, 1}, read_stat=m.stat,
                         own_cpu=lambda: m.own, clock=lambda: m.t)
    m.run(10, other=1.0, own=1.0)
    assert gov.step() is None and calls == []  # not yet every_s: nothing read, nothing set
    m.run(25, other=1.0, own=1.0)
    assert gov.step() == 1 and calls == [1]  # a neighbour on one of two cores: one thread
    m.run(40, other=0.0, own=1.0)
    assert gov.step() == 2 and calls == [1, 2]  # it left: back to the ceiling
    m.run(40, other=0.0, own=2.0)  # our own two busy threads are not "other work"
    assert gov.step() is None and gov.threads == 2 and gov.changes == 2


def test_governor_only_where_quillrl_chose(monkeypatch):
    class FakeTorch:
        @staticmethod
        def get_num_threads():
            return 2

        @staticmethod
        def set_num_threads(n):
            pass

    monkeypatch.setattr(cpu_threads, "_CHOICE", decide({"OMP_NUM_THREADS": "2"}, 2, None))
    assert ThreadGovernor.for_this_process(FakeTorch) is None
    monkeypatch.setattr(cpu_threads, "_CHOICE", decide({}, 2, 1.0))
    gov = ThreadGovernor.for_this_process(FakeTorch)
    assert gov is not None and gov.ceiling == 2


def test_torch_thread_count_is_per_thread_so_the_governor_runs_in_the_compute_thread():
    # the reason ThreadGovernor.step is called from the training loop, not from a timer thread:
    # once a thread has run torch's parallel code (here: asked its count), another thread's
    # set_num_threads no longer reaches it (OpenMP's count is per thread; ATen only copies its
    # global value into a thread that has not started yet)
    code = ("import threading, torch\n"
            "torch.set_num_threads(2); torch.get_num_threads(); (torch.ones(4096) * 2).sum()\n"
            "t = threading.Thread(target=lambda: torch.set_num_threads(1)); t.start(); t.join()\n"
            "print(torch.get_num_threads())")
    assert _python(code, {**CLEAN_ENV, "OMP_NUM_THREADS": "2"}).strip() == "2"


def test_recheck_starts_once_torch_is_loaded_and_only_where_quillrl_chose(monkeypatch):
    class FakeTorch:
        count = 2

        @classmethod
        def get_num_threads(cls):
            return cls.count

        @classmethod
        def set_num_threads(cls, n):
            cls.count = n

    monkeypatch.setattr(cpu_threads, "_CHOICE", decide({}, 2, 0.0))
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    recheck = cpu_threads.Recheck(every_s=0.0)
    assert recheck.step() is None and recheck.governor is None  # torch not loaded yet: wait
    monkeypatch.setitem(sys.modules, "torch", FakeTorch)
    recheck.step()
    assert recheck.governor is not None and recheck.governor.ceiling == 2
    # a user's choice switches it off for good, whatever is loaded
    monkeypatch.setattr(cpu_threads, "_CHOICE", decide({"OMP_NUM_THREADS": "2"}, 2, None))
    user = cpu_threads.Recheck(every_s=0.0)
    assert user.step() is None and user.step() is None and user.governor is None


def test_trainer_callback_moves_torch_threads_in_the_calling_thread(monkeypatch):
    torch = pytest.importorskip("torch")
    from quillrl.train.callbacks import CpuThreads

    before = torch.get_num_threads()
    monkeypatch.setattr(cpu_threads, "_CHOICE", decide({}, 2, 1.0))  # quillrl chose at start
    try:
        torch.set_num_threads(2)  # as a process that started with two
        callback = CpuThreads(every_s=0.0)
        callback.on_step_begin(None, None, None)  # makes the governor in this thread
        governor = callback.recheck.governor
        assert governor is not None and governor.threads == 2
        calls = []
        monkeypatch.setattr(governor, "set_threads", lambda n: (calls.append(n), torch.set_num_threads(n)))
        # the next step sees a fake neighbour on every CPU: one thread, set where the step runs
        stat = governor._last[0]
        governor.read_stat = lambda: {cpu: (busy + 1000, total + 1000) for cpu, (busy, total) in stat.items()}
        governor.own_cpu = lambda: governor._last[1]
        callback.on_step_begin(None, None, None)
        assert calls == [1] and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
