"""Two processes (torchrun, CPU/gloo): each sees the same mixed rewards for the whole batch.

Deterministic under load: the rendezvous store binds port 0 itself (``--standalone``), so no
port is picked, released and raced for by another program between the pick and the bind (the
cause of a failure seen once under a CPU-heavy parallel job); the store's read timeout and the
run's own limit are sized for a machine whose cores are all busy; gloo talks over loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("dist_policy_worker.py")


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun not installed")
def test_second_process_sees_the_same_mixed_rewards(tmp_path, tiny_model_dir):
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "GLOO_SOCKET_IFNAME": "lo"}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "--local-addr", "127.0.0.1",
                           "--rdzv-conf", "read_timeout=600,join_timeout=1200", "--max-restarts", "0",
                           str(WORKER), str(tiny_model_dir), str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 for r in ranks)
    rewards = [r["calls"][0]["rewards"] for r in ranks]
    assert len(rewards[0]) == 8  # 2 processes x 1 prompt x 4 generations, gathered
    assert rewards[0] == rewards[1]
    # the 6 round-robin comparisons of the one group were split between the processes
    judged = [r["calls"][0]["judged"] for r in ranks]
    assert sum(judged) == 2 * 6 and all(j > 0 for j in judged)


def test_a_finished_rank_leaves_with_its_output_flushed_and_a_single_process_returns():
    code = ("import sys; from quillrl.train.lifecycle import leave_if_distributed\n"
            "print('summary', end=''); sys.stderr.write('note'); leave_if_distributed(3)\n"
            "print(' returned', end='')")
    run = lambda env: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                     env={**os.environ, **env}, timeout=120)
    ranked = run({"WORLD_SIZE": "2"})
    assert (ranked.returncode, ranked.stdout, ranked.stderr.endswith("note")) == (3, "summary", True)
    single = run({"WORLD_SIZE": "1"})
    assert (single.returncode, single.stdout) == (0, "summary returned")
