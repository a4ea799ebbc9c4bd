"""The engines' own code against quillrl, each in the engine's own venv (built by engines/build.sh).

verl, OpenRLHF and NeMo Gym pin torch/transformers versions that differ from ours and from each
other, so each has a venv of its own at $QUILLRL_ENGINES_HOME/NAME (default
~/.cache/quillrl/engines/NAME; `make engines` builds them; slime's reward code runs in verl's venv
with its source unpacked beside). Here each venv's pytest runs tests/engines/test_<engine>.py
with PYTHONPATH=<repo>/src (the current tree, not the quillrl installed there), and verl's venv
also runs our constraint and reward tests: verl pins the lowest transformers/numpy/datasets that
quillrl claims to work with, the main venv the highest.

A venv that is not built is a skip here, and a failure under CI=true, where `make test` builds
them first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENGINES_HOME = Path(os.environ.get("QUILLRL_ENGINES_HOME")
                    or Path.home() / ".cache" / "quillrl" / "engines").expanduser()
SLIME_SRC = ENGINES_HOME / "slime-624b824"
TIMEOUT_S = 1200

# engine -> the venv its tests run in
# (vllm_colocate: TRL's colocated vLLM in train policy, a test file of its own in vLLM's venv)
ENGINES = {"verl": "verl", "openrlhf": "openrlhf", "slime": "verl", "nemo_gym": "nemo_gym",
           "vllm": "vllm", "vllm_colocate": "vllm"}

# Our constraint and reward tests, run again with the lowest versions we claim (verl's venv).
LOWEST_VERSIONS_TESTS = [
    "tests/test_verify_api.py",
    "tests/test_creative_constraints.py",
    "tests/test_rewards_mixing.py",
    "tests/test_rewards_pairwise.py",
    "tests/test_rewards_shaping.py",
    "tests/test_group_rewards.py",
    "tests/test_reward_server.py",
    "tests/test_ifeval_conformance.py",
    "tests/test_ifbench_checks.py",
    "tests/test_backends_local.py",
    "tests/test_judges_local.py",
    "tests/test_models.py",
]


def _venv_python(venv: str) -> Path:
    python = ENGINES_HOME / venv / "bin" / "python"
    ready = ENGINES_HOME / venv / ".quillrl-key"
    if not (python.exists() and ready.exists()):
        why = (f"engine venv {ENGINES_HOME / venv} is not built "
               f"(run `make engines` or `engines/build.sh {venv}`)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why + ": under CI every engine's tests must run", pytrace=False)
        pytest.skip(why)
    return python


def _run_pytest(python: Path, args: list[str], **env_extra: str) -> None:
    env = dict(os.environ, **env_extra)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["QUILLRL_ENGINES_HOME"] = str(ENGINES_HOME)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    cmd = [str(python), "-m", "pytest", "-q", "--timeout=900", *args]
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"")
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
        pytest.fail(f"{' '.join(cmd)} ran past {TIMEOUT_S} s:\n{out[-20000:]}", pytrace=False)
    tail = (proc.stdout + proc.stderr)[-20000:]
    sys.stdout.write(tail)  # shown with -rA / on failure
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}"


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_engine_suite_in_its_venv(engine: str) -> None:
    test_file = REPO / "tests" / "engines" / f"test_{engine}.py"
    python = _venv_python(ENGINES[engine])
    if engine == "slime" and not (SLIME_SRC / "slime").is_dir():
        why = f"slime's source is not unpacked at {SLIME_SRC} (run `engines/build.sh slime`)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    _run_pytest(python, [str(test_file.relative_to(REPO))])


def test_constraint_and_reward_tests_with_the_lowest_versions_we_claim() -> None:
    """verl 0.9.1's venv holds the oldest transformers (5.10) quillrl's pins allow. Its own
    QUILLRL_HOME (inside the venv, so rebuilt with it) makes the embedded model's GGUF conversion
    and the punkt/stopword builds run under those versions too, once per build."""
    python = _venv_python("verl")
    _run_pytest(python, LOWEST_VERSIONS_TESTS,
                QUILLRL_HOME=str(python.parent.parent / ".quillrl-home"))
