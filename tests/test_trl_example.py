"""The docs' plain-TRL example runs (tiny random model, 1 step)."""

import json
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "trl_grpo_with_quillrl_rewards.py"


def test_plain_trl_example_runs(tmp_path, tiny_model_dir):
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--model", str(tiny_model_dir),
                           "--output-dir", str(tmp_path / "run"), "--max-steps", "1"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 1 and 0.0 <= summary["constraint_pass_mean"] <= 1.0
