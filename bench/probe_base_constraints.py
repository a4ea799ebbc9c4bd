"""Which single constraints does the embedded base model already meet? A probe for choosing the
demo's tasks (docs/results.md, "Policy evaluation"): a constraint it always meets leaves training
nothing to show, one it never meets in samples gives GRPO no signal.

    OMP_NUM_THREADS=1 .venv/bin/python bench/probe_base_constraints.py

The first bundled creative prompts, each with one instruction appended, answered by
SmolLM2-135M-Instruct through its chat template with plain ``model.generate`` (greedy, and for
the second group also 2 samples per prompt at temperature 1, seed 0), checked by ``verify``.
Prints one line per (constraint, decoding): passes, word counts, clipped answers.
"""

from __future__ import annotations

import json
from importlib.resources import files

import torch

from quillrl.constraints import verify
from quillrl.models import load

# (prompts, max new tokens, sample too?) -> {name: (instruction, constraint)}
GROUPS = [
    ((16, 128, False), {
        "max40": ("Tell it in at most 40 words.", {"id": "creative:word_range", "kwargs": {"max_words": 40}}),
        "ends": ('End your response with the exact phrase "The end."',
                 {"id": "creative:ends_with", "kwargs": {"text": "The end."}}),
    }),
    ((12, 96, True), {
        "min50": ("Write at least 50 words.", {"id": "creative:word_range", "kwargs": {"min_words": 50}}),
        "title": ("Give it a title wrapped in double angular brackets, such as <<my title>>.",
                  {"id": "detectable_format:title", "kwargs": {}}),
        "ps": ("At the end, add a postscript starting with P.S.",
               {"id": "detectable_content:postscript", "kwargs": {"postscript_marker": "P.S."}}),
        "lantern": ('Use the word "lantern".', {"id": "creative:include_words", "kwargs": {"words": ["lantern"]}}),
    }),
]


def main() -> None:
    torch.manual_seed(0)
    model, tok = load("smollm2-135m-instruct")
    tok.padding_side = "left"
    path = files("quillrl.resources") / "creative_prompts.jsonl"
    prompts = [json.loads(line) for line in path.read_text().splitlines()]
    for (k, max_new, sample), variants in GROUPS:
        for name, (say, constraint) in variants.items():
            texts = [tok.apply_chat_template([{"role": "user", "content": p["prompt"] + "\n\n" + say}],
                                             tokenize=False, add_generation_prompt=True) for p in prompts[:k]]
            enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            for mode in ("greedy", "sample") if sample else ("greedy",):
                kw = (dict(do_sample=False) if mode == "greedy"
                      else dict(do_sample=True, temperature=1.0, num_return_sequences=2))
                with torch.no_grad():
                    out = model.generate(**enc, max_new_tokens=max_new, pad_token_id=tok.pad_token_id, **kw)
                passes, words, clipped = 0, [], 0
                for row in out:
                    gen = row[enc["input_ids"].shape[1]:]
                    text = tok.decode(gen, skip_special_tokens=True)
                    clipped += int(tok.eos_token_id not in gen.tolist())
                    words.append(len(text.split()))
                    passes += verify(text, [constraint]).passed
                print(json.dumps({"constraint": name, "decoding": mode, "max_new_tokens": max_new,
                                  "passed": passes, "of": len(out), "words": words, "clipped": clipped}),
                      flush=True)


if __name__ == "__main__":
    main()
