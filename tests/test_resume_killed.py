"""SIGKILL each resumable verb mid-line, rerun it, and get exactly what an uninterrupted run writes.

The verb runs as ``quillrl`` in a subprocess whose writer stops half-way through line N+1 (after
N whole lines) of the named file and sleeps; the test then SIGKILLs it, so the file ends with a
cut line, as a kill mid-write leaves it. The rerun (in-process) must drop that half line and
finish the file; its records must equal a clean run's (timings aside).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quillrl.cli import app

runner = CliRunner()

# Runs `quillrl ARGS`; the writer of the file named $CUT_FILE writes $CUT_AFTER whole lines, then
# half of the next, touches $CUT_FLAG and sleeps until killed.
STOPPER = """
import os, sys, time
from quillrl.data import resumable
after, name, flag = int(os.environ["CUT_AFTER"]), os.environ["CUT_FILE"], os.environ["CUT_FLAG"]
real, count = resumable.ResumableJsonl._append, [0]
def append(self, line):
    if self.path.name == name:
        count[0] += 1
        if count[0] > after:
            self._fh.write(line[: len(line) // 2]); self._fh.flush()
            open(flag, "w").close()
            time.sleep(600)
    real(self, line)
resumable.ResumableJsonl._append = append
from quillrl.cli import app
app(sys.argv[1:], prog_name="quillrl")
"""


def killed(args: list[str], file: Path, after: int, tmp_path: Path) -> None:
    """Run ``quillrl args`` until ``file`` holds ``after`` lines and half a line, then SIGKILL it."""
    flag = tmp_path / f"cut-{file.name}.flag"
    env = {**os.environ, "CUT_AFTER": str(after), "CUT_FILE": file.name, "CUT_FLAG": str(flag),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", STOPPER, *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not flag.exists():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
        assert time.time() < deadline, "no cut line within 240 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    data = file.read_bytes()
    assert data.count(b"\n") == after and not data.endswith(b"\n")  # N lines and a cut one


def records(path: Path) -> list[dict]:
    """The file's records without what differs between two runs of one command (timings)."""
    out = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if isinstance(row.get("cost"), dict):
            row["cost"] = {k: v for k, v in row["cost"].items() if k != "seconds"}
        for order in row.get("orders") or []:
            order.pop("seconds", None)
        out.append(row)
    return out


def run(args: list[str]) -> dict:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def pairs_file(tmp_path: Path, n: int = 6) -> Path:
    return write(tmp_path / "pairs.jsonl", [
        {"id": f"p{i}", "prompt": f"Story {i}.", "chosen": "good " * (4 + i),
         "rejected": "bad " * (3 + 5 * (i % 2))} for i in range(n)])


def sides(tmp_path: Path, n: int = 6) -> tuple[Path, Path, Path]:
    tasks = write(tmp_path / "tasks.jsonl", [{"id": f"t{i}", "prompt": f"Write {i}.",
                                               "constraints": []} for i in range(n)])
    rows = lambda words: [{"id": f"t{i}", "sample": 0, "prompt": f"Write {i}.",  # noqa: E731
                           "response": "w " * words(i), "model": "m", "finish_reason": "stop",
                           "tokens": 1} for i in range(n)]
    return (tasks, write(tmp_path / "a.jsonl", rows(lambda i: 3 + i)),
            write(tmp_path / "b.jsonl", rows(lambda i: 5)))


def test_judge_killed_mid_line_resumes_exactly(tmp_path):
    pairs = pairs_file(tmp_path)
    args = lambda out: ["judge", "--pairs", str(pairs), "--judge", "baseline:length",  # noqa: E731
                        "--out", str(out), "--batch-size", "1"]
    clean, out = tmp_path / "clean.jsonl", tmp_path / "out.jsonl"
    run(args(clean))
    killed(args(out), out, 2, tmp_path)
    s = run(args(out))
    assert (s["skipped_done"], s["written"]) == (2, 4)
    assert records(out) == records(clean)


def test_eval_winrate_killed_mid_line_resumes_exactly(tmp_path):
    tasks, a, b = sides(tmp_path)
    args = lambda j: ["eval", "winrate", "--tasks", str(tasks), "--a", str(a), "--b", str(b),  # noqa: E731
                      "--judge", "baseline:length", "--judgments", str(j), "--batch-size", "1",
                      "--resamples", "100"]
    clean, out = tmp_path / "clean.jsonl", tmp_path / "j.jsonl"
    want = run(args(clean))
    killed(args(out), out, 3, tmp_path)
    got = run(args(out))
    assert records(out) == records(clean)
    assert {k: got[k] for k in ("n", "win_rate", "ci_low", "ci_high")} == \
        {k: want[k] for k in ("n", "win_rate", "ci_low", "ci_high")}


def test_generate_killed_mid_line_resumes_exactly(tmp_path, tiny_model_dir):
    tasks = write(tmp_path / "tasks.jsonl", [{"id": f"t{i}", "prompt": f"Write about {i} things.",
                                               "constraints": []} for i in range(5)])
    args = lambda out: ["generate", "--model", str(tiny_model_dir), "--tasks", str(tasks),  # noqa: E731
                        "--out", str(out), "--max-new-tokens", "4", "--batch-size", "1"]
    clean, out = tmp_path / "clean.jsonl", tmp_path / "out.jsonl"
    run(args(clean))
    killed(args(out), out, 2, tmp_path)
    s = run(args(out))
    assert (s["resumed"], s["generated"]) == (2, 3)
    assert out.read_bytes() == clean.read_bytes()  # rewritten in task order: byte for byte


def test_eval_policy_killed_while_judging_resumes_exactly(tmp_path, tiny_model_dir):
    tasks = write(tmp_path / "tasks.jsonl", [{"id": f"t{i}", "prompt": f"Write {i}.",
                                               "constraints": []} for i in range(4)])
    args = lambda d: ["eval", "policy", "--base", str(tiny_model_dir), "--trained",  # noqa: E731
                      str(tiny_model_dir), "--tasks", str(tasks), "--judge", "baseline:length",
                      "--out-dir", str(d), "--max-new-tokens", "4", "--judge-batch-size", "1",
                      "--resamples", "100", "--temperature", "1.0"]
    clean, out = tmp_path / "clean", tmp_path / "run"
    want = run(args(clean))
    killed(args(out), out / "judgments.jsonl", 2, tmp_path)
    got = run(args(out))
    for name in ("responses-base.jsonl", "responses-trained.jsonl"):
        assert (out / name).read_bytes() == (clean / name).read_bytes()
    assert records(out / "judgments.jsonl") == records(clean / "judgments.jsonl")
    assert (got["n"], got["win_rate"]) == (want["n"], want["win_rate"])


def test_distill_killed_mid_ledger_line_resumes_exactly(tmp_path, tiny_model_dir):
    pairs = pairs_file(tmp_path, n=4)
    args = lambda out: ["distill", "--pairs", str(pairs), "--teacher",  # noqa: E731
                        f"genrm:local:{tiny_model_dir}", "--out", str(out), "--batch-size", "1",
                        "--max-new-tokens", "6"]
    clean, out = tmp_path / "clean.jsonl", tmp_path / "out.jsonl"
    run(args(clean))
    killed(args(out), out.with_name(out.name + ".ledger.jsonl"), 2, tmp_path)
    s = run(args(out))
    assert (s["already_done"], s["judged"]) == (2, 2)
    for suffix in ("", ".ledger.jsonl"):
        assert records(Path(f"{out}{suffix}")) == records(Path(f"{clean}{suffix}"))
