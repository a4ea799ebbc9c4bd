"""Shared by tests/engines/test_openrlhf.py and test_slime.py (run inside the engine venvs).

* :class:`RewardServer` (from ``_server``): a real ``quillrl serve-reward`` on loopback;
* :func:`doc_block`: a marker-delimited block of docs/scale.md, so the flags and the server
  config the tests run are the ones the doc shows;
* :func:`engine_function`: one function compiled from an engine's own source file, for the
  engines whose module cannot be imported on a CPU machine (OpenRLHF's experience_maker imports
  ray and deepspeed, slime's ray/rollout.py imports sglang): the engine's exact code, read from
  the installed file, never copied into this repository;
* :func:`report`: one JSON line per scenario (docs/results.md collects them).
"""

from __future__ import annotations

import ast
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import yaml
from _server import RewardServer  # noqa: F401 - the tests import it from here

REPO = Path(__file__).resolve().parents[2]
SCALE_MD = REPO / "docs" / "scale.md"
ENGINES_HOME = Path(os.environ.get("QUILLRL_ENGINES_HOME", Path.home() / ".cache" / "quillrl" / "engines"))

FORBID_MOON = [{"id": "creative:forbid_words", "kwargs": {"words": ["moon"]}}]
# four responses to one prompt: two violate (they say "moon"); the longest one is a violator
TEXTS = ["the moon again, longer and longer still, on and on, the moon over the sea",
         "short", "a middling story of a fox", "a tale of the moon and the long night"]


def doc_block(name: str) -> str:
    """The fenced code inside ``<!-- quillrl:NAME -->`` ... ``<!-- /quillrl:NAME -->`` in docs/scale.md."""
    text = SCALE_MD.read_text()
    match = re.search(rf"<!-- quillrl:{re.escape(name)} -->\s*```\w*\n(.*?)```\s*<!-- /quillrl:{re.escape(name)} -->",
                      text, re.S)
    assert match, f"docs/scale.md has no block quillrl:{name}"
    return match.group(1)


def flags(command: str) -> dict[str, str | bool]:
    """``--flag value`` / ``--switch`` pairs of a shell command (comments and line ends dropped)."""
    import shlex

    lines = [line.split("#", 1)[0] for line in command.replace("\\\n", " ").splitlines()]
    words = shlex.split(" ".join(lines))
    out: dict[str, str | bool] = {}
    for i, word in enumerate(words):
        if word.startswith("--"):
            nxt = words[i + 1] if i + 1 < len(words) else None
            out[word] = nxt if nxt is not None and not nxt.startswith("--") else True
    return out


def server_config(doc_yaml: str | None = None, **groups: Any) -> dict:
    """The doc's serve-reward config (or a plain one), judged by ``baseline:length`` (longer wins)
    with the RLMR mix and constraints from the label, as every engine test runs it."""
    config = yaml.safe_load(doc_yaml) if doc_yaml else {}
    config.setdefault("reward", {}).update({"judge": "baseline:length", "strategy": "round_robin"})
    config.setdefault("mix", {}).update({"method": "rlmr"})
    config["constraints"] = {"source": "label"}
    config.setdefault("group", {}).update(groups)
    config.setdefault("http", {}).update({"host": "127.0.0.1", "port": 0})
    config["http"].pop("token_env", None)
    return config


def engine_function(path: Path, name: str, cls: str | None = None, namespace: dict | None = None) -> Any:
    """The function ``name`` (a method of class ``cls`` when given) compiled from the engine's file
    ``path``, with ``namespace`` as its globals; decorators are dropped (``torch.no_grad``)."""
    tree = ast.parse(path.read_text(), str(path))
    body = tree.body
    if cls is not None:
        body = next(node for node in body if isinstance(node, ast.ClassDef) and node.name == cls).body
    node = next(n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name)
    node.decorator_list = []
    module = ast.Module(body=[node], type_ignores=[])
    scope = dict(namespace or {})
    exec(compile(module, str(path), "exec"), scope)  # noqa: S102 - the engine's own code, from its installed file
    fn = scope[name]
    fn.engine_source = f"{path}:{node.lineno}"
    return fn


def check_violators(rewards: list[float], passed: list[bool], advantages: list[float] | None) -> None:
    """RLMR's guarantee, per group: every violator below the group mean, and a negative advantage."""
    mean = sum(rewards) / len(rewards)
    for i, ok in enumerate(passed):
        if not ok and not all(not p for p in passed):
            assert rewards[i] < mean, (i, rewards, passed)
            if advantages is not None:
                assert advantages[i] < 0, (i, advantages, passed)


def report(scenario: str, **fields: Any) -> None:
    print(json.dumps({"scenario": scenario, **fields}, default=float), flush=True)


class Timer:
    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = round(time.perf_counter() - self.start, 3)
