"""Shared fixtures: a tiny random model (unit tests) and the embedded model (integration)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from quillrl import cpu_threads

# Beside other CPU-bound work, torch's OpenMP threads spin while they wait for a core (2.8x slower
# beside one busy core, docs/results.md "A busy machine"): choose this process's threads as every
# CLI command does (docs/design.md, "A busy machine"), before any test loads torch. Subprocesses
# inherit the choice; on an idle machine nothing changes.
cpu_threads.configure()

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from quillrl.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory) -> Path:
    from quillrl.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-qwen"), arch="qwen2")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    """The embedded SmolLM2 model, converted to safetensors once per QUILLRL_HOME."""
    from quillrl.models import DEFAULT_MODEL, resolve

    return resolve(DEFAULT_MODEL)


@pytest.fixture(autouse=True)
def _quiet_tokenizers():
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    yield


@pytest.fixture
def killed_at_checkpoint():
    """``kill(args, run_dir, step=2)``: start ``quillrl *args``, SIGKILL it once ``run_dir`` holds a
    complete ``checkpoint-<step>``, and return the metric lines written by then."""
    import signal
    import subprocess
    import sys
    import time

    def kill(args: list[str], run_dir: Path, step: int = 2) -> list[str]:
        proc = subprocess.Popen([sys.executable, "-m", "quillrl.cli", *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while not (run_dir / f"checkpoint-{step}" / "trainer_state.json").exists():
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline, f"no checkpoint-{step} within 300 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return (run_dir / "metrics.jsonl").read_text().splitlines()

    return kill


@pytest.fixture
def launch_server():
    """``launch_server(args) -> (proc, summary)``: start ``quillrl *args`` (a server verb) as a
    real process and read the JSON line it prints once its port is bound."""
    import json
    import subprocess
    import sys
    import threading

    launch = "import sys; from quillrl.cli import main; sys.argv[0] = 'quillrl'; main()"
    procs = []

    def start(args: list[str]):
        proc = subprocess.Popen([sys.executable, "-c", launch, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=120)
        if not (line and line[0].strip()):
            proc.kill()
            pytest.fail(f"{args[0]} printed no URL; stderr: {proc.stderr.read()[-2000:]}")
        return proc, json.loads(line[0])

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# tests/engines/ runs inside the engines' own venvs (tests/test_engines.py drives it): the main
# venv never collects it while walking tests/, though naming a file there still runs it.
collect_ignore = ["engines"]
