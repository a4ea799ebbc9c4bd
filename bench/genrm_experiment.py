"""The RLCS GenRM experiment (not CI): distill → SFT → GRPO shaped vs unshaped, against the BT RM,
the untrained judge and ``baseline:length``, on every WQ style-mimic and LAMP-P pair and ≥ 100
StoryER test pairs, GenRMs in reasoning mode with swap, 95% intervals resampled by prompt.

Every stage is the ``quillrl`` CLI in a subprocess; its exact command and JSON summary go to
``OUT/results.json`` as it finishes, so the file is the record of what ran. Resumable at every
level, so the experiment can be spread over sessions by rerunning the same command:

* ``distill`` and ``judge`` resume themselves (ledger / per-pair JSONL; the teacher's response
  cache means nothing is paid twice), so they are rerun every time, which costs nothing for
  what is done;
* a training stage that stopped midway resumes from its last checkpoint (``--resume``); one
  killed before its first checkpoint starts again;
* finished stages (same command in ``results.json``) are skipped.

Stages (defaults are the issue's sizes; ``--distill-pairs`` etc. size them to the CPU you have):

1. ``distill`` from ``--teacher`` (default: the embedded model, with the reasoning prefill), both
   orders, RLCS's consistency filter and the human label;
2. ``train genrm-sft`` on the kept chains, if at least ``--min-sft-examples`` survive (else
   recorded as skipped with the counts: no verdict-only bootstrap, the SFT targets must be
   reasoning chains that start with the prefill);
3. ``train genrm-grpo`` unshaped (``floor: 1``) and shaped (``floor: 0.2``) from the same start,
   sampled chains (temperature 1, up to ``--grpo-completion-tokens`` so analyses can finish);
   per step: within-group entropy spread, reward std shaped against unshaped on the same
   samples; after: the largest parameter difference between the two adapters;
4. ``train bt-rm`` (``configs/bt_rm_storyer.yaml``: one epoch over StoryER-train);
5. ``judge`` + ``eval alignment`` per set: each GenRM in reasoning mode with swap, then the BT RM
   and ``baseline:length`` on the same pairs, intervals by prompt.

``--force-verdict`` (on by default) closes every analysis that never reached its verdict and
reads the verdict there (docs/design.md, "Forced verdict"), in distillation, GRPO and judging:
the embedded 135M model writes no verdict of its own (0 of 50 with the prefill), so without it
every stage would see only invalid judgments. ``--no-force-verdict`` for a teacher and judges
that finish. ``--bt-rm DIR`` scores an already trained BT RM instead of training one.

    nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python bench/genrm_experiment.py --out runs/genrm_exp
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

QUILLRL = [sys.executable, "-m", "quillrl.cli"]
NICE = ["nice", "-n", "5"]
COMPARED = ("shaped_reward_mean", "reward_unshaped", "group_reward_std", "group_reward_std_unshaped",
            "entropy_spread", "accuracy", "invalid_rate", "entropy_correct")
SETS = ("storyer_test", "wq_style_mimic", "lamp_p")


def run(args: list[str], log: dict, name: str, *, resumes_itself: bool = False) -> dict:
    """Run one quillrl command (niced); record the command line and its JSON summary.

    A stage already in ``results.json`` with the same command is not run again, unless the
    command resumes itself (then a rerun costs only what is left to do).
    """
    shown = "quillrl " + " ".join(shlex.quote(a) for a in args)
    if log.get(name, {}).get("command") == shown and not resumes_itself:
        print(f"\n(done) $ {shown}", flush=True)
        return log[name]["summary"]
    print(f"\n$ {shown}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(NICE + QUILLRL + args, check=False, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{name} failed (exit {proc.returncode})")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    log[name] = {"command": shown, "wall_seconds": round(time.perf_counter() - start, 1), "summary": summary}
    print(json.dumps(summary)[:600], flush=True)
    return summary


def train(verb: str, config: str, output_dir: Path, extra: list[str], log: dict, name: str) -> dict:
    """``quillrl train VERB``, resumed from its last checkpoint when a previous session stopped it."""
    from quillrl.train.common import last_checkpoint

    args = ["train", verb, "--config", config, "--output-dir", str(output_dir), *extra]
    if log.get(name, {}).get("command") == "quillrl " + " ".join(shlex.quote(a) for a in args):
        return run(args, log, name)  # finished before: skipped
    if output_dir.exists() and last_checkpoint(output_dir) is not None:
        args.append("--resume")
    elif output_dir.exists():
        shutil.rmtree(output_dir)  # killed before its first checkpoint: nothing to resume
    summary = run(args, log, name)
    log[name]["command"] = log[name]["command"].removesuffix(" --resume")  # the stage, not the session
    return summary


def max_param_difference(a: Path, b: Path) -> dict:
    """The largest |θ_a − θ_b| over the tensors of two adapters (or models) saved as safetensors."""
    from safetensors.numpy import load_file

    def tensors(path: Path) -> dict:
        out = {}
        for f in sorted(path.glob("*.safetensors")):
            out.update(load_file(str(f)))
        return out

    ta, tb = tensors(a), tensors(b)
    diffs = {k: float(abs(ta[k].astype("float64") - tb[k].astype("float64")).max()) for k in ta if k in tb}
    worst = max(diffs, key=diffs.get) if diffs else None
    return {"max_abs_difference": diffs.get(worst), "tensor": worst, "tensors_compared": len(diffs)}


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
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return means


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/genrm_exp"))
    ap.add_argument("--teacher", default="genrm:local:smollm2-135m-instruct",
                    help="GenRM spec of the distillation teacher, e.g. genrm:openai:http://host:8000/v1#model")
    ap.add_argument("--distill-pairs", type=int, default=None, help="StoryER-train pairs to distill (default all)")
    ap.add_argument("--judge-tokens", type=int, default=512, help="reasoning length of every GenRM judgment")
    ap.add_argument("--min-sft-examples", type=int, default=8)
    ap.add_argument("--sft-steps", type=int, default=100)
    ap.add_argument("--grpo-steps", type=int, default=40, help="GRPO steps (1 pair x 4 sampled judgments each)")
    ap.add_argument("--grpo-completion-tokens", type=int, default=384)
    ap.add_argument("--grpo-prompt-tokens", type=int, default=2048, help="GRPO: pairs with longer judge prompts are dropped, counted")
    ap.add_argument("--judge-backend", default="auto", choices=("auto", "local", "vllm"),
                    help="where the genrm:local judges (teacher, stage 5) run: auto moves them to vLLM "
                         "(float32, the local backend's results) where vLLM is installed")
    ap.add_argument("--judge-batch-size", type=int, default=4,
                    help="pairs per judge call in stage 5; the backend batch holds both orders of them "
                         "(decoding on a CPU is bound by reading the weights, so wider batches are cheaper a row)")
    ap.add_argument("--storyer-test-pairs", type=int, default=100, help="seeded sample of StoryER test (all: 207)")
    ap.add_argument("--sets", default=",".join(SETS), help="evaluation sets, comma-separated")
    ap.add_argument("--force-verdict", action=argparse.BooleanOptionalAction, default=True,
                    help="close analyses that never reach their verdict (default: on)")
    ap.add_argument("--bt-rm", type=Path, default=None,
                    help="a trained BT RM directory (train bt-rm output) to score instead of training one")
    ap.add_argument("--stop-after", choices=("distill", "sft", "grpo", "bt"), default=None,
                    help="stop after this stage (the rest runs on the next invocation)")
    args = ap.parse_args()
    from quillrl.eval.generate import judge_on

    args.teacher = judge_on(args.teacher, args.judge_backend)
    out = args.out
    data, results = out / "data", out / "results.json"
    log = json.loads(results.read_text()) if results.exists() else {}
    log.setdefault("started", time.strftime("%Y-%m-%d %H:%M:%S"))
    log["invocation"] = " ".join(shlex.quote(a) for a in sys.argv)
    force = ["--force-verdict"] if args.force_verdict else []

    def save() -> None:
        results.write_text(json.dumps(log, indent=2))

    out.mkdir(parents=True, exist_ok=True)
    files = {"storyer_train": data / "storyer-train.jsonl", "storyer_test": data / "storyer-test.jsonl",
             "wq_style_mimic": data / "wq-style-mimic.jsonl", "lamp_p": data / "lamp-p.jsonl"}
    run(["data", "import", "storyer", "--out", str(files["storyer_train"]), "--split", "train"], log, "import_train")
    run(["data", "import", "storyer", "--out", str(files["storyer_test"]), "--split", "test"], log, "import_test")
    run(["data", "import", "wq-style-mimic", "--out", str(files["wq_style_mimic"])], log, "import_wq")
    run(["data", "import", "lamp-p", "--out", str(files["lamp_p"])], log, "import_lamp_p")
    save()

    # 1. distillation with the reasoning prefill (resumes itself; the cache makes reruns free)
    distilled = out / "distill" / "reasoning.jsonl"
    limit = ["--limit", str(args.distill_pairs)] if args.distill_pairs else []
    got = run(["distill", "--pairs", str(files["storyer_train"]), "--teacher", args.teacher, "--out", str(distilled),
               *limit, "--max-new-tokens", str(args.judge_tokens), "--batch-size", "4", *force],
              log, "distill", resumes_itself=True)
    save()
    if args.stop_after == "distill":
        return

    # 2. SFT on the kept chains; 3. GRPO unshaped and shaped from the same start
    untrained = judge_on("genrm:local:smollm2-135m-instruct", args.judge_backend)
    start_model, genrms = "smollm2-135m-instruct", {"untrained": untrained}
    if got["examples"] >= args.min_sft_examples:
        sft = train("genrm-sft", "configs/genrm_sft.yaml", out / "sft",
                    ["--max-steps", str(args.sft_steps), "--set", f"data={distilled}"], log, "genrm_sft")
        start_model, genrms["sft"] = sft["final"], judge_on(sft["judge"], args.judge_backend)
    else:
        log["genrm_sft"] = {"skipped": f"{got['examples']} SFT examples kept by distillation (fewer than "
                            f"{args.min_sft_examples}); GRPO starts from the untrained model",
                            "distill": {k: got.get(k) for k in ("kept", "dropped", "invalid_by_reason")}}
    save()
    if args.stop_after == "sft":
        return
    grpo = ["--max-steps", str(args.grpo_steps), "--set", f"model={start_model}", "--set", f"pairs={files['storyer_train']}",
            "--set", f"max_prompt_tokens={args.grpo_prompt_tokens}", "--set", "grpo.prompts_per_step=1",
            "--set", f"grpo.max_completion_length={args.grpo_completion_tokens}", "--set", "grpo.temperature=1.0",
            "--set", "save_steps=2", "--set", "trl.gradient_accumulation_steps=4",
            *(["--set", "shaping.force_verdict=true"] if args.force_verdict else [])]
    for name, cfg in (("unshaped", "configs/genrm_grpo_unshaped.yaml"), ("shaped", "configs/genrm_grpo.yaml")):
        genrms[f"grpo_{name}"] = judge_on(train("genrm-grpo", cfg, out / f"grpo_{name}", grpo, log,
                                                f"genrm_grpo_{name}")["judge"], args.judge_backend)
        save()
    log["grpo_comparison"] = {
        "parameters": max_param_difference(out / "grpo_shaped" / "final", out / "grpo_unshaped" / "final"),
        "figure": str(out / "curves.png"),
        "means_over_steps": plot_curves(out / "grpo_shaped", out / "grpo_unshaped", out / "curves.png")}
    save()
    if args.stop_after == "grpo":
        return

    # 4. the BT reward model, one epoch over StoryER-train (or one trained before)
    if args.bt_rm is not None:
        bt = {"judge": f"scalar:{args.bt_rm / 'final'}"}
        log["bt_rm"] = {"reused": str(args.bt_rm)}
    else:
        bt = train("bt-rm", "configs/bt_rm_storyer.yaml", out / "bt_rm",
                   ["--set", f"pairs={files['storyer_train']}"], log, "bt_rm")
    save()
    if args.stop_after == "bt":
        return

    # 5. agreement with the human labels: each GenRM in reasoning mode with swap (resumable judge
    # runs), scored with the BT RM and baseline:length on the same pairs, CI by prompt
    judge_batch = ["--batch-size", str(args.judge_batch_size)]
    # the earlier runs' command, unchanged: 4 pairs, backend batches of 8 (vLLM batches itself)
    if args.judge_batch_size != 4 and not untrained.startswith("genrm:vllm"):
        judge_batch += ["--backend-batch-size", str(2 * args.judge_batch_size)]
    for set_name in args.sets.split(","):
        sample = ["--sample", str(args.storyer_test_pairs)] if set_name == "storyer_test" else []
        written = []
        for name, spec in genrms.items():
            path = out / "judgments" / f"{set_name}-{name}.jsonl"
            run(["judge", "--pairs", str(files[set_name]), "--judge", spec, "--mode", "reasoning", "--swap",
                 *sample, "--seed", "0", "--max-new-tokens", str(args.judge_tokens), *judge_batch,
                 *force, "--out", str(path)], log, f"judge_{set_name}_{name}", resumes_itself=True)
            written += ["--judgments", str(path)]
            save()
        # intervals by prompt, except where every pair shares one (LAMP-P's pairs all answer
        # "Write a paragraph of creative writing."; each is a different author's text): by pair
        prompts = {json.loads(line)["prompt"] for line in files[set_name].read_text().splitlines() if line}
        unit = "prompt" if len(prompts) > 1 else "pair"
        run(["eval", "alignment", "--pairs", str(files[set_name]), *sample, "--seed", "0", *written,
             "--judge", bt["judge"], "--judge", "baseline:length", "--bootstrap-by", unit,
             "--report-dir", str(out / f"eval_{set_name}")], log, f"eval_{set_name}")
        save()
        # the shaping question on its own: shaped against unshaped, paired on the same pairs
        if "grpo_shaped" in genrms and "grpo_unshaped" in genrms:
            run(["eval", "alignment", "--pairs", str(files[set_name]), *sample, "--seed", "0",
                 "--judgments", str(out / "judgments" / f"{set_name}-grpo_unshaped.jsonl"),
                 "--judgments", str(out / "judgments" / f"{set_name}-grpo_shaped.jsonl"),
                 "--bootstrap-by", unit, "--report-dir", str(out / f"eval_{set_name}_shaping")],
                log, f"eval_{set_name}_shaping")
            save()
    # one figure across the sets: each judge's accuracy and 95% CI, the swap rows only
    from quillrl.eval.alignment_report import plot_accuracy

    names = {**{spec: name for name, spec in genrms.items()}, bt["judge"]: "BT RM"}
    panels = {set_name: [(names.get(row["judge"], row["judge"]), row)
                         for row in log[f"eval_{set_name}"]["summary"]["judges"] if not row.get("view")]
              for set_name in args.sets.split(",")}
    plot_accuracy(panels, out / "accuracy_by_set.png")
    log["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save()
    print(f"\nresults: {results}")


if __name__ == "__main__":
    main()
