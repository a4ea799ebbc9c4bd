"""A busy machine (issue 23, section 8): a command's time alone, then beside one CPU-bound job.

The script runs the target once on the machine as it is ("idle"), then starts one CPU-bound job
of its own (``python -c "while True: pass"``, at the same priority), waits until that job is
running, runs the target again ("busy") and stops the job. Each run is under ``/usr/bin/time -v``:
wall time, CPU time (user + system, the target and every child it waited for) and peak RSS (the
largest single process). The ratio busy/idle of the wall times is what issue 23's done-when bounds
(at most 2.5x for ``make demo`` and for one ``quillrl judge`` run).

The target runs with the user's OpenMP variables removed (``OMP_NUM_THREADS``,
``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``, ``QUILLRL_THREADS``), so quillrl's own choice is measured
(docs/design.md, "A busy machine"); ``--keep-env`` keeps them. Each row records the load average
before the run, the CPU seconds the neighbour got, and the ``cpu_threads`` choice from the
target's last JSON summary line, where it printed one.

Targets (run from the repository root; the heavy ones are minutes on two cores):

    .venv/bin/python bench/busy_machine.py judge --out-dir runs/busy [--pairs 16]
    .venv/bin/python bench/busy_machine.py demo --out-dir runs/busy
    .venv/bin/python bench/busy_machine.py test --out-dir runs/busy --repeat 3
    .venv/bin/python bench/busy_machine.py cmd --out-dir runs/busy -- COMMAND [ARGS...]

* ``judge``: imports StoryER's test split once (``quillrl data import storyer --split test
  --seed 0``, not timed), then times ``quillrl judge`` of ``--pairs`` pairs drawn with seed 0,
  verdict mode, the embedded GenRM; each run writes a fresh judgments file.
* ``demo``: ``make demo DEMO_DIR=OUT/demo-idle`` then ``.../demo-busy`` (fresh directories).
* ``test``: ``make test`` ``--repeat`` times, every run beside the job (no idle run); each row
  says passed or failed and its wall time.
* ``cmd``: any command, e.g. a small target to check the script itself.

Writes ``OUT/<target>.json`` (every run) and ``OUT/<target>.md`` (a markdown table with the
ratio), and prints the table; the last line on stdout is the JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
USER_VARS = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "QUILLRL_THREADS")
BURNER = "while True: pass"


def parse_time_v(text: str) -> dict:
    """The figures we keep from GNU time's ``-v`` report.

    >>> r = parse_time_v("\\tUser time (seconds): 1.50\\n\\tSystem time (seconds): 0.25\\n"
    ...     "\\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03.5\\n"
    ...     "\\tMaximum resident set size (kbytes): 2048\\n\\tExit status: 1\\n")
    >>> r["wall_s"], r["cpu_s"], r["max_rss_mb"], r["exit"]
    (3723.5, 1.75, 2.0, 1)
    """
    def field(label: str) -> str:
        match = re.search(rf"^\s*{re.escape(label)}: (.+)$", text, re.M)
        if match is None:
            raise ValueError(f"no {label!r} in /usr/bin/time -v output")
        return match.group(1).strip()

    wall = 0.0
    for part in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":"):
        wall = wall * 60 + float(part)
    user, system = float(field("User time (seconds)")), float(field("System time (seconds)"))
    return {"wall_s": round(wall, 2), "user_s": user, "sys_s": system, "cpu_s": round(user + system, 2),
            "max_rss_mb": round(int(field("Maximum resident set size (kbytes)")) / 1024, 1),
            "exit": int(field("Exit status"))}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Neighbour:
    """One CPU-bound process of our own, started and stopped around a run."""

    def __enter__(self) -> "Neighbour":
        self.proc = subprocess.Popen([sys.executable, "-c", BURNER])
        deadline = time.monotonic() + 30
        while _cpu_seconds(self.proc.pid) < 0.2:  # wait until it really runs
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("the CPU-bound job never got a core in 30 s")
            time.sleep(0.05)
        self.cpu_s = 0.0
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.cpu_s = round(_cpu_seconds(self.proc.pid), 1)
        except OSError:
            self.cpu_s = None
        self.proc.kill()
        self.proc.wait()


def _last_summary(stdout: str) -> dict | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        return value if isinstance(value, dict) else None
    return None


def timed(command: list[str], env: dict[str, str], log: Path, phase: str) -> dict:
    """Run ``command`` under ``/usr/bin/time -v``; its figures, the load before, its cpu_threads."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        load = os.getloadavg()
        proc = subprocess.run(["/usr/bin/time", "-v", "-o", report.name, *command], cwd=REPO, env=env,
                              capture_output=True, text=True)
        figures = parse_time_v(Path(report.name).read_text())
    log.write_text(f"$ {shlex.join(command)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    summary = _last_summary(proc.stdout)
    return {"phase": phase, "command": shlex.join(command), **figures,
            "load_before": [round(x, 2) for x in load],
            "cpu_threads": (summary or {}).get("cpu_threads"), "log": str(log)}


def run_pair(command_for, env: dict[str, str], out: Path, name: str) -> list[dict]:
    """The target alone, then beside the neighbour."""
    rows = [timed(command_for("idle"), env, out / f"{name}-idle.log", "idle")]
    with Neighbour() as neighbour:
        rows.append(timed(command_for("busy"), env, out / f"{name}-busy.log", "busy"))
    rows[-1]["neighbour_cpu_s"] = neighbour.cpu_s
    return rows


def markdown(name: str, rows: list[dict]) -> str:
    head = ("| target | run | exit | wall s | CPU s | peak RSS MB | load before (1 min) | threads chosen |\n"
            "|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in rows:
        choice = r.get("cpu_threads") or {}
        chosen = (f"{choice.get('threads') or 'default'}{' passive' if choice.get('passive') else ''}"
                  f" ({choice.get('by')})" if choice else "—")
        lines.append(f"| {name} | {r['phase']} | {r['exit']} | {r['wall_s']} | {r['cpu_s']} | {r['max_rss_mb']} "
                     f"| {r['load_before'][0]} | {chosen} |")
    return head + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="cmd: the command to time follows --")
    parser.add_argument("target", choices=["judge", "demo", "test", "cmd"])
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--quillrl", default=".venv/bin/quillrl", help="how to run quillrl (split as a shell would)")
    parser.add_argument("--make", default="make")
    parser.add_argument("--pairs", type=int, default=16, help="judge: pairs judged per run")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--repeat", type=int, default=3, help="test: runs of make test beside the job")
    parser.add_argument("--keep-env", action="store_true", help="keep the user's OpenMP variables")
    argv = sys.argv[1:]
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)

    out = args.out_dir.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ) if args.keep_env else {k: v for k, v in os.environ.items() if k not in USER_VARS}
    quillrl = shlex.split(args.quillrl)

    if args.target == "judge":
        pairs = out / "storyer-test.jsonl"
        if not pairs.exists():
            subprocess.run([*quillrl, "data", "import", "storyer", "--split", "test", "--seed", "0",
                            "--data-root", args.data_root, "--out", str(pairs)], cwd=REPO, env=env, check=True,
                           stdout=subprocess.DEVNULL)

        def command_for(phase: str) -> list[str]:
            judged = out / f"judge-{phase}.jsonl"
            judged.unlink(missing_ok=True)  # a fresh run, never a resume
            return [*quillrl, "judge", "--pairs", str(pairs), "--judge", "genrm:local:smollm2-135m-instruct",
                    "--mode", "verdict", "--sample", str(args.pairs), "--seed", "0", "--out", str(judged)]
        rows = run_pair(command_for, env, out, "judge")
        name = f"quillrl judge ({args.pairs} pairs, verdict)"
    elif args.target == "demo":
        def command_for(phase: str) -> list[str]:
            demo_dir = out / f"demo-{phase}"
            if demo_dir.exists():
                raise SystemExit(f"{demo_dir} exists: give a new --out-dir, so each demo starts fresh")
            return [args.make, "demo", f"DEMO_DIR={demo_dir}"]
        rows = run_pair(command_for, env, out, "demo")
        name = "make demo"
    elif args.target == "test":
        rows = []
        for i in range(1, args.repeat + 1):
            with Neighbour() as neighbour:
                row = timed([args.make, "test"], env, out / f"test-busy-{i}.log", f"busy {i}")
            row["neighbour_cpu_s"] = neighbour.cpu_s
            row["passed"] = row["exit"] == 0
            rows.append(row)
        name = "make test"
    else:
        if not command:
            parser.error("cmd needs a command after --")
        rows = run_pair(lambda phase: list(command), env, out, "cmd")
        name = shlex.join(command)

    summary: dict = {"target": name, "runs": rows, "cores": len(os.sched_getaffinity(0)),
                     "env_kept": args.keep_env}
    if args.target == "test":
        summary["passed"] = sum(r["passed"] for r in rows)
    else:
        idle, busy = rows
        summary["busy_over_idle_wall"] = round(busy["wall_s"] / idle["wall_s"], 2)
    table = markdown(name, rows)
    if "busy_over_idle_wall" in summary:
        table += f"\nbusy/idle wall time: {summary['busy_over_idle_wall']}x\n"
    (out / f"{args.target}.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / f"{args.target}.md").write_text(table)
    print(table)
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))


if __name__ == "__main__":
    main()
