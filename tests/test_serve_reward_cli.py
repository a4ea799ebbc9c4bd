"""``quillrl serve-reward`` as a user runs it: a real process, a config file, Ctrl-C."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import yaml

LAUNCH = "import sys; from quillrl.cli import main; sys.argv[0] = 'quillrl'; main()"


def test_serve_reward_scores_tasks_by_id_and_prints_a_summary(tmp_path, launch_server):
    config = tmp_path / "rm.yaml"
    config.write_text(yaml.safe_dump({
        "http": {"port": 0}, "reward": {"judge": "baseline:length", "strategy": "pivot"},
        "group": {"size": 3}, "constraints": {"source": "tasks", "tasks": "bundled:creative_tasks"}}))
    proc, info = launch_server(["serve-reward", "--config", str(config)])
    try:
        assert info["url"].startswith("http://127.0.0.1:") and info["group_size"] == 3 and not info["auth"]
        texts = ["P.S. short", "a longer story without the marker", "mid story\n\nP.S. yes"]

        def ask(text):
            body = {"prompt": "ignored: the task's prompt is used", "response": text, "label": "cw001-c0"}
            return httpx.post(info["url"] + "/slime", json=body, timeout=120).json()

        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(ask, texts))
        assert [a["passed"] for a in answers] == [True, False, True]
        assert answers[1]["reason"].startswith("detectable_content:postscript")
        assert answers[1]["reward"] < sum(a["reward"] for a in answers) / 3
        unknown = httpx.post(info["url"] + "/slime", json={"prompt": "p", "response": "r", "label": "nope"})
        assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "body.label"
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["groups_complete"] == 1 and summary["requests"] == 4, err[-2000:]


def test_bad_config_and_exposed_without_token(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("group: {sise: 3}\n")
    run = subprocess.run([sys.executable, "-c", LAUNCH, "serve-reward", "--config", str(bad)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "did you mean 'size'" in run.stderr and "Traceback" not in run.stderr
    run = subprocess.run([sys.executable, "-c", LAUNCH, "serve-reward", "--token-env", "UNSET_TOKEN_VAR"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "UNSET_TOKEN_VAR" in run.stderr


def test_a_warning_when_bound_beyond_loopback_without_a_token():
    from quillrl.httpserve.http import warn_if_exposed

    assert "without a token" in warn_if_exposed("0.0.0.0", None)
    assert warn_if_exposed("0.0.0.0", "token") is None and warn_if_exposed("127.0.0.1", None) is None


def test_an_empty_tasks_file_is_refused_at_start(tmp_path):
    # Issue 23 §7: it used to start and wait, refusing every request it would ever get.
    empty = tmp_path / "tasks.jsonl"
    empty.write_text("")
    run = subprocess.run([sys.executable, "-c", LAUNCH, "serve-reward", "--port", "0",
                          "--set", "constraints.source=tasks", "--set", f"constraints.tasks={empty}",
                          "--set", "reward.judge=baseline:length"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr[-2000:]
    assert f"{empty} holds no task" in run.stderr and "Traceback" not in run.stderr
