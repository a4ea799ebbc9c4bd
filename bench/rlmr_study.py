"""Miniature RLMR study: the same policy, tasks and seed trained with three reward mixers.

    .venv/bin/python bench/rlmr_study.py --steps 40 --out runs/rlmr-study

Runs ``quillrl train policy`` (configs/demo.yaml plus --set overrides) once per mixer
(writing_only, linear, rlmr) and writes ``study.md`` (a table of constraint pass rate, writing
reward and completion length, averaged over the first and the last ``--window`` steps) and
``study.png`` (the three metrics over steps). A run directory that already finished is reused,
so the study can be resumed after an interruption.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

METHODS = ("writing_only", "linear", "rlmr")
METRICS = ("constraint_pass_rate", "writing_reward_mean", "completion_length_mean")


def run(method: str, args, out: Path) -> list[dict]:
    run_dir = out / method
    metrics = run_dir / "metrics.jsonl"
    done = metrics.exists() and sum(1 for _ in metrics.open()) >= args.steps
    if not done:
        cmd = [sys.executable, "-m", "quillrl.cli", "train", "policy", "--config", args.config,
               "--max-steps", str(args.steps), "--output-dir", str(run_dir), "--set", f"mix.method={method}",
               "--set", f"save_steps={args.steps}", *[x for s in args.set for x in ("--set", s)]]
        if (run_dir / "metrics.jsonl").exists():
            cmd.append("--resume")
        subprocess.run(cmd, check=True)
    return [json.loads(line) for line in metrics.read_text().splitlines() if line]


def window_mean(rows: list[dict], key: str, first: bool, window: int) -> float | None:
    part = rows[:window] if first else rows[-window:]
    values = [r[key] for r in part if isinstance(r.get(key), (int, float))]
    return sum(values) / len(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--out", default="runs/rlmr-study")
    parser.add_argument("--set", action="append", default=[], help="extra config overrides for every run")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {m: run(m, args, out) for m in METHODS}

    lines = [(f"Steps: {args.steps}; means over the first and last {args.window} steps, and over all "
              "steps (every arm sees the same task at the same step, so the all-steps means compare "
              "like with like)."), "",
             "| mixer | " + " | ".join(f"{k} (start → end; all)" for k in METRICS) + " | violator max adv. < 0 |",
             "|---" * (len(METRICS) + 2) + "|"]
    summary = {}
    for method, rows in results.items():
        cells, summary[method] = [], {}
        for key in METRICS:
            a, b = window_mean(rows, key, True, args.window), window_mean(rows, key, False, args.window)
            whole = window_mean(rows, key, True, len(rows))
            summary[method][key] = {"start": a, "end": b, "all": whole}
            cells.append("–" if a is None else f"{a:.3f} → {b:.3f}; {whole:.3f}")
        viol = [r["violator_max_advantage"] for r in rows if r.get("violator_max_advantage") is not None]
        neg = f"{sum(v < 0 for v in viol)}/{len(viol)} steps"
        summary[method]["violator_negative_steps"] = neg
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {neg} |")
    (out / "study.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(14, 3.6))
    for ax, key in zip(axes, METRICS):
        for method, rows in results.items():
            steps = [r["step"] for r in rows if isinstance(r.get(key), (int, float))]
            values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
            line, = ax.plot(steps, values, alpha=0.25)
            smooth = [sum(values[max(0, i - args.window + 1):i + 1]) / len(values[max(0, i - args.window + 1):i + 1])
                      for i in range(len(values))]
            ax.plot(steps, smooth, color=line.get_color(), label=method)
        ax.set_title(f"{key}\n(faint: per step; solid: mean of last {args.window})", fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "study.png", dpi=110)
    print("\n".join(lines))
    print(json.dumps({"out": str(out), "steps": args.steps, "summary": summary}))


if __name__ == "__main__":
    main()
