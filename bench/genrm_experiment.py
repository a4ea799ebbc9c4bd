"""GenRM training experiment on StoryER (not CI): untrained GenRM, SFT, GRPO unshaped vs shaped, BT RM.

Every stage is the ``quillrl`` CLI, run as a subprocess whose exact command is recorded with its
JSON summary in ``OUT/results.json``; ``OUT/curves.png`` compares the shaped and unshaped GRPO
runs step by step. Sized for a CPU (the embedded SmolLM2-135M-Instruct, short pairs, a few steps each):
the numbers show that the pipeline runs end to end and how the two rewards behave, not what a
real GenRM reaches.

The SFT teacher is by default the embedded model itself (nothing else is available offline;
``--teacher`` takes any GenRM spec). It first distils in reasoning mode exactly as
``quillrl distill`` does. A 135M model writes no valid ``<analysis>``/``<verdict>`` judgment
(see ``results.json``), so nothing survives the filter; when fewer than 8 examples survive,
so that the later stages have a judge that answers in format at all, the experiment
bootstraps the format from the same teacher's *verdict-mode* judgments (both orders, one forward
pass each), kept by the same consistency filter (:func:`quillrl.distill.classify`), written as
SFT examples whose analysis is the template's ``(skipped)``. This departs from RLCS, whose
student learns the teacher's reasoning; it is labelled as such in the results.

    .venv/bin/python bench/genrm_experiment.py [--out runs/genrm_exp] [--teacher SPEC] [--sft-steps 24] [--grpo-steps 6] ...

Rerunning it continues an interrupted experiment: stages already in results.json are skipped (a
training stage cut off midway refuses to overwrite its directory: delete it, or resume it by hand).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

QUILLRL = [sys.executable, "-m", "quillrl.cli"]
NICE = ["nice", "-n", "5"]
COMPARED = ("shaped_reward_std", "frac_reward_zero_std", "accuracy", "invalid_rate",
            "entropy_correct", "entropy_wrong", "confident_correct_share")


def run(args: list[str], log: dict, name: str) -> dict:
    """Run one quillrl command (niced); record the command line and its JSON summary.

    A stage already in ``results.json`` with the same command is not run again, so an
    interrupted experiment continues where it stopped when the script is rerun.
    """
    command = NICE + QUILLRL + args
    shown = "quillrl " + " ".join(shlex.quote(a) for a in args)
    if log.get(name, {}).get("command") == shown:
        print(f"\n(done) $ {shown}", flush=True)
        return log[name]["summary"]
    print(f"\n$ {shown}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(command, check=False, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{name} failed (exit {proc.returncode})")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    log[name] = {"command": shown, "wall_seconds": round(time.perf_counter() - start, 1), "summary": summary}
    print(json.dumps(summary)[:600], flush=True)
    return summary


def verdict_bootstrap(teacher: str, pairs: Path, out: Path, limit: int, max_tokens: int, log: dict) -> dict:
    """SFT examples from the teacher's verdict-mode judgments (see the docstring)."""
    from quillrl.backends.prompts import encode
    from quillrl.data import JsonlWriter, read_pairs
    from quillrl.distill import KEPT, classify, examples_for
    from quillrl.judges import make_judge
    from quillrl.judges.template import SKIPPED_ANALYSIS, judge_prompt

    done = log.get("sft_data_verdict_bootstrap", {}).get("summary")
    if done and done["pairs"] <= limit and out.exists():
        return done
    start = time.perf_counter()
    judge = make_judge(teacher, mode="verdict", swap=True)
    tokenizer = judge.backend.tokenizer
    records = [p for p in read_pairs(pairs).records
               if len(encode(tokenizer, judge_prompt(p.prompt, p.chosen, p.rejected))) <= max_tokens][:limit]
    outcomes: dict[str, int] = {}
    with JsonlWriter(out) as writer:
        for lo in range(0, len(records), 8):
            batch = records[lo:lo + 8]
            for pair, j in zip(batch, judge.compare_many([(p.prompt, p.chosen, p.rejected) for p in batch])):
                outcome = classify(j)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                if outcome == KEPT:
                    for order in j.orders:
                        order.analysis = SKIPPED_ANALYSIS
                    for example in examples_for(pair, j):
                        writer.write(example)
    summary = {"pairs": len(records), "outcomes": outcomes, "examples": 2 * outcomes.get(KEPT, 0),
               "max_prompt_tokens": max_tokens, "out": str(out)}
    log["sft_data_verdict_bootstrap"] = {
        "command": f"bench/genrm_experiment.py verdict_bootstrap (library: make_judge(mode='verdict', "
                   f"swap=True) + distill.classify + distill.examples_for) on {pairs}",
        "wall_seconds": round(time.perf_counter() - start, 1), "summary": summary}
    print(json.dumps(summary), flush=True)
    return summary


def plot_curves(shaped: Path, unshaped: Path, out: Path) -> dict:
    """Shaped against unshaped GRPO, metric by metric; return per-run means over the steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {name: [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines() if x]
            for name, path in (("shaped (floor 0.2)", shaped), ("unshaped (floor 1)", unshaped))}
    fig, axes = plt.subplots(2, 4, figsize=(16, 6.4))
    means: dict[str, dict] = {}
    for ax, key in zip(axes.flat, COMPARED):
        for name, rows in runs.items():
            pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
            if pts:
                ax.plot(*zip(*pts), marker="o", markersize=3, label=name)
                means.setdefault(name, {})[key] = round(sum(v for _, v in pts) / len(pts), 4)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    axes.flat[-1].axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return means


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/genrm_exp"))
    ap.add_argument("--teacher", default="genrm:local:smollm2-135m-instruct",
                    help="GenRM spec of the distillation teacher, e.g. genrm:openai:http://host:8000/v1#model")
    ap.add_argument("--reasoning-pairs", type=int, default=4, help="pairs the teacher judges in reasoning mode")
    ap.add_argument("--sft-pairs", type=int, default=64, help="pairs for the verdict-mode bootstrap")
    ap.add_argument("--max-prompt-tokens", type=int, default=1536, help="SFT data: shorter pairs only (CPU)")
    ap.add_argument("--sft-steps", type=int, default=24, help="SFT optimizer steps (2 examples each)")
    ap.add_argument("--sft-lr", type=float, default=1e-3,
                    help="LoRA learning rate: 8 steps at 3e-4 left a judge that never closes <analysis>")
    ap.add_argument("--grpo-steps", type=int, default=6, help="GRPO steps (1 pair x 4 judgments each)")
    ap.add_argument("--grpo-prompt-tokens", type=int, default=1280, help="GRPO: shorter pairs only (CPU)")
    ap.add_argument("--bt-steps", type=int, default=6, help="BT steps (4 pairs each)")
    ap.add_argument("--eval-pairs", type=int, default=16, help="pairs of each test set, a seeded random sample (the files group pairs by prompt)")
    ap.add_argument("--reasoning-eval-pairs", type=int, default=16,
                    help="StoryER test pairs the trained GenRMs judge in reasoning mode (0: skip)")
    args = ap.parse_args()
    out = args.out
    data, results = out / "data", out / "results.json"
    log = json.loads(results.read_text()) if results.exists() else {}
    log.setdefault("started", time.strftime("%Y-%m-%d %H:%M:%S"))

    def save() -> None:
        results.write_text(json.dumps(log, indent=2))

    out.mkdir(parents=True, exist_ok=True)
    train, test, wq = data / "storyer-train.jsonl", data / "storyer-test.jsonl", data / "wq-style-mimic.jsonl"
    run(["data", "import", "storyer", "--out", str(train), "--split", "train"], log, "import_train")
    run(["data", "import", "storyer", "--out", str(test), "--split", "test"], log, "import_test")
    run(["data", "import", "wq-style-mimic", "--out", str(wq)], log, "import_wq")

    # 1. the spec'd distillation, reasoning mode (default teacher: the embedded model itself)
    distilled = out / "distill" / "reasoning.jsonl"
    got = run(["distill", "--pairs", str(train), "--teacher", args.teacher,
               "--out", str(distilled), "--limit", str(args.reasoning_pairs), "--max-new-tokens", "256",
               "--batch-size", "4"], log, "distill_reasoning")
    save()
    sft_data = distilled
    if got["examples"] < 8:  # too few to train on: bootstrap the format (see the docstring)
        sft_data = out / "distill" / "verdict_bootstrap.jsonl"
        verdict_bootstrap(args.teacher, train, sft_data, args.sft_pairs, args.max_prompt_tokens, log)
        save()

    # 2. SFT, then GRPO unshaped and shaped from the same SFT adapter; 3. the BT reward model
    start_model, judges = "smollm2-135m-instruct", ["genrm:local:smollm2-135m-instruct"]
    if sft_data.exists() and sft_data.stat().st_size:
        sft = run(["train", "genrm-sft", "--config", "configs/genrm_sft.yaml", "--max-steps", str(args.sft_steps),
                   "--output-dir", str(out / "sft"), "--set", f"data={sft_data}",
                   "--set", "sft.gradient_accumulation_steps=2", "--set", f"sft.learning_rate={args.sft_lr}"],
                  log, "genrm_sft")
        start_model = sft["final"]
        judges.append(sft["judge"])
    else:  # nothing survived the filter: GRPO starts from the untrained model
        log["genrm_sft"] = {"skipped": f"no SFT example in {sft_data}"}
    save()
    # the SFT'd judge writes its five dimension headings, </analysis> and the verdict in ~45
    # tokens (greedy); 64 leaves room, and on a CPU the ~1.5k-token prompt dominates the cost
    grpo_common = ["--max-steps", str(args.grpo_steps), "--set", f"model={start_model}", "--set",
                   f"pairs={train}", "--set", f"max_prompt_tokens={args.grpo_prompt_tokens}",
                   "--set", "grpo.prompts_per_step=1", "--set", "grpo.max_completion_length=64",
                   "--set", "save_steps=2", "--set", "trl.gradient_accumulation_steps=4"]
    runs = {}
    for name, cfg in (("unshaped", "configs/genrm_grpo_unshaped.yaml"), ("shaped", "configs/genrm_grpo.yaml")):
        runs[name] = run(["train", "genrm-grpo", "--config", cfg, "--output-dir", str(out / f"grpo_{name}"),
                          *grpo_common], log, f"genrm_grpo_{name}")
        save()
    bt = run(["train", "bt-rm", "--config", "configs/bt_rm.yaml", "--max-steps", str(args.bt_steps),
              "--output-dir", str(out / "bt_rm"), "--set", f"pairs={train}", "--set", "bt.max_length=1024"],
             log, "bt_rm")
    save()
    log["curves"] = {"figure": str(out / "curves.png"),
                     "means_over_steps": plot_curves(out / "grpo_shaped", out / "grpo_unshaped",
                                                     out / "curves.png")}
    save()

    # 4. agreement with human labels: StoryER test and WQ style-mimic, verdict mode, both orders
    trained = judges[1:] + [runs["unshaped"]["judge"], runs["shaped"]["judge"]]
    judges = [*judges[:1], *trained, bt["judge"], "baseline:length"]
    for name, pairs in (("storyer_test", test), ("wq_style_mimic", wq)):
        run(["eval", "alignment", "--pairs", str(pairs), "--sample", str(args.eval_pairs), "--mode", "verdict",
             "--swap", "--batch-size", "8", "--report-dir", str(out / f"eval_{name}"),
             *[x for j in judges for x in ("--judge", j)]], log, f"eval_{name}_verdict")
        save()
    # the trained GenRMs write their own (short) judgments: reasoning mode on the same pairs
    if args.reasoning_eval_pairs:
        run(["eval", "alignment", "--pairs", str(test), "--sample", str(args.reasoning_eval_pairs),
             "--mode", "reasoning", "--swap", "--batch-size", "8", "--max-new-tokens", "64",
             *[x for j in trained for x in ("--judge", j)]], log, "eval_storyer_test_reasoning")
    log["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save()
    print(f"\nresults: {results}")


if __name__ == "__main__":
    main()
