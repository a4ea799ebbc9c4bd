"""Checks run cold from many threads give the verdicts a sequential run gives (issue 23 §2).

lm-eval's IFEval checks call langdetect, whose profiles load lazily and not thread-safely;
serve-reward scores groups in a thread pool, so its first burst marked compliant lowercase
texts as violating. Every lazily loaded resource is now loaded once under one lock
(``quillrl.constraints.lazy``). The cold run needs a fresh interpreter: a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")

# Each case is (text, constraints, prompt); every lazy loader is reached by one of them.
SCRIPT = r"""
import json, sys, threading
from quillrl.constraints import verify

LOWER = ("the quiet harbour woke slowly, and the gulls circled over the grey water while "
         "fishermen mended their nets.")
UPPER = LOWER.upper()
HAIKU = "An old silent pond\nA frog jumps into the pond\nSplash! Silence again"
STORY = ("The lighthouse keeper counted the ships. She wrote each name in a ledger. "
         "Nobody had asked her to do it, but the habit kept her company.")
CASES = [
    (LOWER, [{"id": "change_case:english_lowercase"},
             {"id": "language:response_language", "kwargs": {"language": "en"}}], None),
    (UPPER, [{"id": "change_case:english_capital"}], None),
    (STORY, [{"id": "length_constraints:number_sentences",
              "kwargs": {"num_sentences": 3, "relation": "at least"}}], None),
    (HAIKU, [{"id": "creative:syllable_pattern", "kwargs": {"pattern": [5, 7, 5]}}], None),
    (STORY, [{"id": "ratio:stop_words", "kwargs": {"percentage": 60}},
             {"id": "count:conjunctions", "kwargs": {"small_n": 1}},
             {"id": "words:words_position", "kwargs": {}}], None),
    (STORY + " \U0001F600", [{"id": "format:emoji"}], None),
]
# combination:repeat_prompt reads the prompt: one shared constraint, a different prompt each.
for i in range(8):
    prompt = f"Write about harbour number {i}."
    CASES.append((prompt + " It is quiet.",
                  [{"id": "combination:repeat_prompt",
                    "kwargs": {"prompt_to_repeat": "Write about harbour."}}], prompt))

def run(case):
    text, constraints, prompt = case
    try:
        v = verify(text, constraints, prompt=prompt)
        return [[r.passed, r.reason] for r in v.results]
    except Exception as exc:
        return repr(exc)

jobs = [CASES[i % len(CASES)] for i in range(int(sys.argv[1]))]
out = [None] * len(jobs)
start = threading.Barrier(len(jobs))
def worker(i):
    start.wait()
    out[i] = run(jobs[i])
threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
for t in threads: t.start()
for t in threads: t.join()
sequential = [run(case) for case in jobs]
print(json.dumps({"threads": out, "sequential": sequential}))
"""


def _run_cold(n: int) -> dict:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(n)], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_cold_checks_from_many_threads_match_a_sequential_run():
    result = _run_cold(96)
    differ = [(i, t, s) for i, (t, s) in enumerate(zip(result["threads"], result["sequential"]))
              if t != s]
    assert not differ, f"{len(differ)} of 96 differ, e.g. {differ[:3]}"
    # The sequential verdicts are the right ones (compliant texts pass).
    assert all(r[0] is True for r in result["sequential"][0]), result["sequential"][0]


def test_warm_loads_every_lazy_resource():
    from quillrl.constraints import lazy

    status = lazy.warm()
    assert set(status) == set(lazy.LOADERS)
    missing = {k: v for k, v in status.items() if v != "ok" and "pos_tagger" not in k}
    assert not missing, missing
