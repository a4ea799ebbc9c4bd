"""Run every engine's scenarios in its own venv and summarize them (issue #19's figures).

    python bench/engine_scenarios.py [--out runs/engine_scenarios.json]

Each engine suite (tests/engines/test_<engine>.py) prints one JSON line per scenario with the
rewards the engine received from a real ``serve-reward`` and the advantages its own code computed
(``make engines`` builds the venvs). This script runs the four suites with ``-s``, keeps those lines,
and prints a markdown table: per scenario, the samples scored, the violators, the largest
advantage any violator got (RLMR's guarantee: below 0) and the largest gap of a violator's reward
above its group's mean (below 0), plus the wall time of each suite. The last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOME = Path(os.environ.get("QUILLRL_ENGINES_HOME") or Path.home() / ".cache/quillrl/engines").expanduser()
SUITES = {"verl": "verl", "openrlhf": "openrlhf", "slime": "verl", "nemo_gym": "nemo_gym"}


def run_suite(engine: str, venv: str) -> tuple[list[dict], float, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.run([str(HOME / venv / "bin" / "python"), "-m", "pytest", "-q", "-s",
                           "-p", "no:cacheprovider", f"tests/engines/test_{engine}.py"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - start
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"scenario"')]
    return lines, seconds, proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]


def violators(row: dict) -> list[bool]:
    if "violator" in row:
        return list(row["violator"])
    return [not p for p in row.get("passed", [])]


def group_gaps(row: dict, bad: list[bool]) -> list[float]:
    """A violator's reward minus the mean of its group (verl rows hold groups of 4 in order)."""
    rewards = row.get("rewards") or []
    size = 4 if row.get("scenario") in ("clean_groups", "same_index_quill", "same_index_naive",
                                        "load_pkg", "load_file", "naive_raw_prompt") else len(rewards)
    gaps = []
    for start in range(0, len(rewards), size or 1):
        group, flags = rewards[start:start + size], bad[start:start + size]
        if 1 < len(group) and any(flags) and not all(flags):
            mean = sum(group) / len(group)
            gaps += [r - mean for r, b in zip(group, flags) if b]
    return gaps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/engine_scenarios.json")
    args = parser.parse_args()
    rows, suites = [], {}
    for engine, venv in SUITES.items():
        lines, seconds, tail = run_suite(engine, venv)
        suites[engine] = {"seconds": round(seconds, 1), "pytest": tail, "scenarios": len(lines)}
        for line in lines:
            bad = violators(line)
            advantages = line.get("advantages") or []
            adv_bad = [a for a, b in zip(advantages, bad) if b and a is not None]
            gaps = group_gaps(line, bad)
            rows.append({"engine": engine, "scenario": line["scenario"], "samples": len(line.get("rewards") or []),
                         "violators": sum(bad), "max_violator_advantage": max(adv_bad) if adv_bad else None,
                         "max_violator_gap": max(gaps) if gaps else None,
                         "seconds": line.get("seconds"), "raw": line})
    print("| engine | scenario | samples | violators | max violator advantage | max violator − group mean | s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    fmt = lambda v: "—" if v is None else f"{v:+.3f}"  # noqa: E731
    for r in rows:
        print(f"| {r['engine']} | {r['scenario']} | {r['samples']} | {r['violators']} | "
              f"{fmt(r['max_violator_advantage'])} | {fmt(r['max_violator_gap'])} | {r['seconds'] or '—'} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"suites": suites, "rows": rows}, indent=1))
    worst = [r["max_violator_advantage"] for r in rows if r["max_violator_advantage"] is not None]
    print(json.dumps({"suites": suites, "scenario_lines": len(rows),
                      "max_violator_advantage": max(worst) if worst else None, "out": args.out}))


if __name__ == "__main__":
    main()
