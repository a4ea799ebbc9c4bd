"""A real ``quillrl serve-reward`` on loopback for engine tests (shared by every engine's tests).

``reward_server(tmp_path, group_size=4, timeout_s=30)`` writes a serve-reward YAML (judge
``baseline:length``: deterministic, no model; mix ``rlmr``; constraints from the label), starts
``sys.executable -m quillrl.cli serve-reward --config <yaml>`` with port 0, reads the URL from the
JSON line the server prints once bound, waits for ``/health``, yields the URL and stops the
process. ``sections`` override or add config sections, e.g. ``mix={"margin": 1.0}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

SRC = str(Path(__file__).resolve().parents[2] / "src")


def server_config(group_size: int = 4, timeout_s: float = 30.0, **sections: dict) -> dict:
    config = {"http": {"host": "127.0.0.1", "port": 0},
              "reward": {"judge": "baseline:length", "strategy": "round_robin"},
              "mix": {"method": "rlmr"},
              "group": {"size": group_size, "timeout_s": timeout_s},
              "constraints": {"source": "label"}}
    for key, value in sections.items():
        config.setdefault(key, {}).update(value)
    return config


@contextlib.contextmanager
def reward_server(tmp_path: Path, group_size: int = 4, timeout_s: float = 30.0,
                  **sections: dict) -> Iterator[str]:
    path = Path(tmp_path) / f"serve_reward_{group_size}_{time.monotonic_ns()}.yaml"
    path.write_text(json.dumps(server_config(group_size, timeout_s, **sections)))  # JSON is YAML
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    log = open(path.with_suffix(".log"), "w")  # a file, not a pipe: a full pipe would block the server
    proc = subprocess.Popen([sys.executable, "-m", "quillrl.cli", "serve-reward", "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=120)
        if not (line and line[0].strip()):
            proc.kill()
            raise RuntimeError(f"serve-reward printed no URL; stderr: {path.with_suffix('.log').read_text()[-3000:]}")
        url = json.loads(line[0])["url"]
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
            time.sleep(0.1)
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
