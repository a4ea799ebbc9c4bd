"""Miniature RLMR study: the same policy, tasks and seed trained with four reward mixers, and
each trained arm evaluated against the base on held-out tasks.

    .venv/bin/python bench/rlmr_study.py --steps 40 --out runs/rlmr-study

Runs ``quillrl train policy`` (configs/demo.yaml plus --set overrides) once per mixer
(writing_only, linear, rlmr, constraint_only) and writes ``study.md`` (a table of constraint
pass rate, writing reward and completion length, averaged over the first and the last
``--window`` steps) and ``study.png`` (the three metrics over steps). Then ``quillrl eval
policy`` runs each arm's ``final/`` adapter against the base model on held-out tasks with the
same judge: ``--tasks`` (default the bundled creative tasks, whose constraints include word and
line ranges) is split by prompt (seed 0, half held out) into ``tasks-train.jsonl``, which every
arm trains on, and ``tasks-heldout.jsonl``, which none sees, and ``heldout.md`` gives per arm: held-out pass rate,
the paired difference against base, win rate against base (all with 95% intervals), the LC win
rate, mean length and clipped share. The base's responses are generated once and shared by the
arms. Every stage is resumable: a finished run directory is reused, an evaluation resumes its
responses and judgments, so the study can be rerun after an interruption (``--skip-eval``:
training only).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

METHODS = ("writing_only", "linear", "rlmr", "constraint_only")
# eval policy as the demo's judge runs (verdict-only), with room past the training length so
# that a drift to longer outputs shows as length, not as clipping alone
EVAL_DEFAULTS = ("--mode", "verdict", "--max-new-tokens", "256", "--batch-size", "10")
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


def split_tasks(tasks: str, out: Path) -> str:
    """Write the train and held-out halves of ``tasks`` (by prompt, seed 0); the held-out path."""
    from quillrl.data.split import split_by_group
    from quillrl.data import resolve_tasks_path

    rows = [json.loads(line) for line in resolve_tasks_path(tasks).read_text().splitlines() if line]
    for name, side in (("tasks-train.jsonl", "train"), ("tasks-heldout.jsonl", "test")):
        part = split_by_group(rows, lambda r: r["prompt"], side, seed=0, test_fraction=0.5)
        (out / name).write_text("".join(json.dumps(r) + "\n" for r in part))
    return str(out / "tasks-heldout.jsonl")


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
    parser.add_argument("--tasks", default="bundled:creative_tasks", help="tasks, split by prompt into "
                        "train and held-out halves")
    parser.add_argument("--judge", default="genrm:local:smollm2-135m-instruct", help="eval policy's judge")
    parser.add_argument("--judge-backend", default="auto", choices=("auto", "local", "vllm"),
                        help="where a genrm:local judge runs: auto moves it to vLLM (float32) where "
                        "vLLM is installed; eval policy's generation follows its own --backend auto")
    parser.add_argument("--base", default="smollm2-135m-instruct", help="the base policy (the config's model)")
    parser.add_argument("--eval-arg", action="append", default=[],
                        help="extra `eval policy` option, e.g. --eval-arg=--n=4 (repeatable; after "
                        "the defaults, so it overrides them)")
    parser.add_argument("--skip-eval", action="store_true", help="train (and tabulate) only")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated mixers to run (default all four), e.g. writing_only")
    args = parser.parse_args()
    from quillrl.eval.generate import judge_on

    args.judge = judge_on(args.judge, args.judge_backend)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    args.heldout = split_tasks(args.tasks, out)
    args.set = [f"tasks={out / 'tasks-train.jsonl'}", *args.set]
    results = {m: run(m, args, out) for m in args.methods.split(",")}

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
    heldout = {} if args.skip_eval else evaluate_arms(args, out)
    print(json.dumps({"out": str(out), "steps": args.steps, "summary": summary, "heldout": heldout}))


def eval_policy(args, trained: str, out_dir: Path) -> dict:
    """``quillrl eval policy`` of one trained policy against the base; its JSON summary."""
    cmd = [sys.executable, "-m", "quillrl.cli", "eval", "policy", "--base", args.base,
           "--trained", trained, "--tasks", args.heldout,
           "--judge", args.judge, "--out-dir", str(out_dir), *EVAL_DEFAULTS, *args.eval_arg]
    done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def evaluate_arms(args, out: Path) -> dict:
    """Each arm against the base on the held-out tasks, and ``heldout.md``."""
    from quillrl.eval.policy_report import interval, pct

    shared = out / "eval-base" / "responses-base.jsonl"
    results = {}
    for method in args.methods.split(","):
        eval_dir = out / method / "eval"
        eval_dir.mkdir(parents=True, exist_ok=True)
        if shared.exists() and not (eval_dir / "responses-base.jsonl").exists():
            shutil.copyfile(shared, eval_dir / "responses-base.jsonl")  # resumed: nothing to generate
        results[method] = eval_policy(args, str(out / method / "final"), eval_dir)
        if not shared.exists():
            shared.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(eval_dir / "responses-base.jsonl", shared)
    first = next(iter(results.values()))
    lines = [f"Held-out tasks `{args.heldout}` ({first['n']} responses on {first['tasks']} tasks "
             f"per arm), judge `{args.judge}`; 95% bootstrap intervals by task; the difference is "
             "paired (arm − base on the same task and sample).", "",
             "| policy | held-out pass rate | − base (paired) | win rate vs base | LC win rate | "
             "mean words | clipped |", "|---|---:|---:|---:|---:|---:|---:|",
             f"| base | {pct(first['pass_rate_base'])} | — | — | — | {first['mean_words_base']:.1f} | "
             f"{pct(first['clipped_share_base'])} |"]
    for method, r in results.items():
        detail = json.loads((out / method / "eval" / "summary.json").read_text())["details"]
        lines.append(f"| {method} | {interval(r['pass_rate_trained'], *detail['ci_trained'])} | "
                     f"{interval(r['pass_rate_diff'], r['diff_ci_low'], r['diff_ci_high'])} | "
                     f"{interval(r['win_rate'], r['ci_low'], r['ci_high'])} | {pct(r['lc_win_rate'])} | "
                     f"{r['mean_words_trained']:.1f} | {pct(r['clipped_share_trained'])} |")
    (out / "heldout.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return results


if __name__ == "__main__":
    main()
