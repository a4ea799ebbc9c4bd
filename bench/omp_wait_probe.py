"""How torch's OpenMP threads wait, alone and beside a CPU-bound job (issue 23, section 8).

Greedy generation of 8 prompts x 64 tokens with the embedded SmolLM2-135M-Instruct, timed in wall
and process CPU time. Run it under the OpenMP settings to compare, alone and beside
``python3 -c "while True: pass"``; the label (first argument) is echoed in the output line:

    .venv/bin/python bench/omp_wait_probe.py default
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/omp_wait_probe.py passive
    OMP_NUM_THREADS=1 .venv/bin/python bench/omp_wait_probe.py one-thread
    GOMP_SPINCOUNT=1000 .venv/bin/python bench/omp_wait_probe.py spin1000

The figures in docs/results.md ("A busy machine (issue 23 §8)") came from this code.
"""

import os
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

p = os.path.expanduser("~/.cache/quillrl/models/" + "smollm2-135m-instruct")
tok = AutoTokenizer.from_pretrained(p)
m = AutoModelForCausalLM.from_pretrained(p, dtype=torch.float32)
ids = tok(["Write a story about a cat."] * 8, return_tensors="pt").input_ids
t = time.perf_counter()
c0 = time.process_time()
with torch.no_grad():
    m.generate(ids, max_new_tokens=64, do_sample=False, min_new_tokens=64)
print(f"{sys.argv[1]} threads={torch.get_num_threads()} wall={time.perf_counter()-t:.2f}s "
      f"cpu={time.process_time()-c0:.2f}s", flush=True)
