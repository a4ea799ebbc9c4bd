"""A real ``quillrl serve-reward`` on loopback for engine tests (shared by every engine's tests).

:class:`RewardServer` starts ``python -m quillrl.cli serve-reward --config <yaml>`` (port 0) with
this repository's ``src`` first on the path, reads the URL from the JSON line the server prints once
bound, waits for ``/health``, and stops the process on exit; ``metric()`` reads ``/metrics``. The
interpreter is this one, or ``$QUILLRL_SERVER_PYTHON`` where this venv lacks quillrl's own
dependencies (NeMo Gym's Python 3.13 venv: PyPI has only CUDA builds of torch for it).

``reward_server(tmp_path, group_size=4, timeout_s=30, **sections)`` yields the URL of a server
judged by ``baseline:length`` (deterministic, no model), mixed by ``rlmr``, with constraints
from the label; ``sections`` override or add config sections, e.g. ``mix={"margin": 1.0}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

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


class RewardServer:
    """A serve-reward subprocess for one config (a dict), on a free loopback port."""

    def __init__(self, config: dict):
        self.dir = tempfile.TemporaryDirectory(prefix="quillrl-engine-test-")
        self.path = Path(self.dir.name) / "serve_reward.yaml"
        self.path.write_text(json.dumps(config))  # JSON is YAML
        self.url = ""

    def __enter__(self) -> "RewardServer":
        env = {**os.environ, "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))}
        python = os.environ.get("QUILLRL_SERVER_PYTHON", sys.executable)
        self.log = open(self.path.with_suffix(".log"), "w")  # a file: a full pipe would block the server
        self.proc = subprocess.Popen([python, "-m", "quillrl.cli", "serve-reward", "--config", str(self.path)],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        try:
            line: list[str] = []
            reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
            reader.start()
            reader.join(timeout=180)
            if not (line and line[0].strip()):
                raise RuntimeError("serve-reward printed no URL; its log:\n" + self.stderr())
            self.url = json.loads(line[0])["url"]
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise
                time.sleep(0.1)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def stderr(self) -> str:
        self.log.flush()
        return self.path.with_suffix(".log").read_text()[-4000:]

    def metrics(self) -> dict[str, float]:
        """``/metrics`` as {"name{labels}": value}."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=30) as response:
            text = response.read().decode()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in text.splitlines() if line and not line.startswith("#")}

    def metric(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``."""
        return sum(value for key, value in self.metrics().items()
                   if key.partition("{")[0] == name
                   and all(f'{k}="{v}"' in key.partition("{")[2] for k, v in labels.items()))


@contextlib.contextmanager
def reward_server(tmp_path: Path, group_size: int = 4, timeout_s: float = 30.0,
                  **sections: dict) -> Iterator[str]:
    with RewardServer(server_config(group_size, timeout_s, **sections)) as server:
        yield server.url
