"""vLLM in this process, for GPU machines (``pip install 'quillrl[vllm]'``).

vLLM is imported only when this backend is built, so quillrl works without it. Prompts are
turned into token ids by the same code as the local backend (``prompts.encode``) and handed to
vLLM as ``{"prompt_token_ids": ...}``, so both backends feed the model identical tokens and a
judge scores the same on either. ``choice_probs`` is a one-token greedy generation with
``logprobs=max_logprobs``, reading each choice's first-token id (``prompts.choice_token_ids``)
from the returned top list; a choice outside it gets 0.0, counted in
``usage.extra["choice_outside_top_logprobs"]`` (raise ``max_logprobs`` to look further).
vLLM reports log-probabilities of the model's own distribution, before temperature and top-p,
as the local backend does.

A PEFT adapter directory is served as a LoRA on its base model (``enable_lora``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import BackendError, ConfigError
from ..models import DEFAULT_MODEL
from .base import Backend, Generation, Prompt, SamplingParams, UsageCounter
from .prompts import encode, encode_choices


class VLLMBackend(Backend):
    """``vllm.LLM`` over an embedded model name, a model directory or a PEFT adapter.

    ``llm_options`` go to ``vllm.LLM`` unchanged (``tensor_parallel_size``,
    ``gpu_memory_utilization``, ``max_model_len``, ``dtype``...).
    """

    name = "vllm"

    def __init__(self, model: str | Path = DEFAULT_MODEL, *, max_logprobs: int = 20, seed: int = 0,
                 **llm_options: Any):
        try:
            import vllm
        except ImportError as exc:
            raise BackendError(
                "the vllm backend needs vLLM, which is not installed. On a machine with a CUDA "
                "GPU install it with `pip install 'quillrl[vllm]'`; elsewhere use the 'local' "
                "backend or an 'openai:' server"
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
        self.llm = vllm.LLM(model=str(path), seed=seed, max_logprobs=max_logprobs, **llm_options)
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
        for r, (request, wanted) in enumerate(zip(outputs, ids)):
            completion = request.outputs[0]
            top = completion.logprobs[0] if completion.logprobs else {}
            for c, token_id in enumerate(wanted):
                if token_id in top:
                    out[r, c] = math.exp(top[token_id].logprob)
                else:
                    self.usage.count("choice_outside_top_logprobs")
        self.usage.calls += len(prompts)
        self.usage.prompt_tokens += sum(map(len, encoded))
        self.usage.seconds += time.perf_counter() - start
        return out

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
