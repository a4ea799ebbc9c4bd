"""bench/busy_machine.py reads GNU time's report: checked on a real ``/usr/bin/time -v`` run."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "busy_machine.py"


def _bench():
    spec = importlib.util.spec_from_file_location("busy_machine", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which("/usr/bin/time") is None, reason="GNU time is not installed")
def test_parse_time_v_on_a_real_report(tmp_path):
    report = tmp_path / "time.txt"
    subprocess.run(["/usr/bin/time", "-v", "-o", str(report), sys.executable, "-c",
                    "import time; x = bytearray(64 << 20); t = time.process_time()\n"
                    "while time.process_time() - t < 0.3: pass\nraise SystemExit(3)"], check=False)
    figures = _bench().parse_time_v(report.read_text())
    assert figures["exit"] == 3
    assert figures["cpu_s"] >= 0.3 and figures["wall_s"] >= 0.3
    assert figures["max_rss_mb"] >= 64


def test_markdown_row_names_the_choice():
    row = {"phase": "busy", "exit": 0, "wall_s": 2.0, "cpu_s": 1.5, "max_rss_mb": 100.0,
           "load_before": [1.0, 1.0, 1.0], "cpu_threads": {"threads": 1, "passive": True, "by": "quillrl"}}
    table = _bench().markdown("t", [row])
    assert "| t | busy | 0 | 2.0 | 1.5 | 100.0 | 1.0 | 1 passive (quillrl) |" in table
