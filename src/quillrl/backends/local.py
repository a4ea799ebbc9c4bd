"""In-process inference with transformers, on CPU or GPU.

Prompts are sorted by length and run in batches of ``batch_size`` with left padding (so every
row's last prompt token sits in the last column), then put back in the caller's order.
``choice_probs`` sorts by tokens instead, so prompts that share a prefix share a batch, and
runs that prefix once into a KV cache (``prefix_cache``); on a CPU, rows of different lengths
with no shared prefix run one by one, because the padding mask makes the batch slower there.
``generate`` calls ``model.generate`` with a generation config built from
:class:`SamplingParams` alone; ``choice_probs`` is one forward pass per batch that reads the
softmax at the last prompt position.

Inside :meth:`LocalBackend.reusing_generation_cache` (a reasoning judge's scope), ``generate``
keeps each row's KV cache (prompt and completion, up to ``generation_cache_bytes``) and
``choice_probs`` runs only the part of a prompt after the longest kept prefix: a verdict probe
is the judge prompt plus its own chain plus ``<verdict>``, so the long prompt and the chain are
not run a second time. Keys are matched token by token from the first token, so a kept prefix
is reused only where it is the same tokens at the same positions, and the probabilities are
those of a full pass, to float rounding.

Where we depart from plain ``model.generate``, and why:

* The model's own ``generation_config`` sampling defaults (``top_k=50``, a repetition penalty,
  ``min_p``...) are overridden with neutral values, so ``temperature``/``top_p`` mean what they
  mean on vLLM or an OpenAI server and a judge behaves the same on every backend.
* Log-probabilities come from the model's logits before temperature and top-p (a logits
  processor placed ahead of transformers' warpers records them), as vLLM reports them; only the
  top-k and the chosen token are kept per step, never a full ``steps x vocab`` tensor.
* Stop strings are matched on the *generated* text only, by our own stopping criterion:
  transformers' ``stop_strings`` also matches across the prompt boundary, so a chat prompt
  ending in a newline would stop on a double-newline stop string at the first generated
  newline. vLLM and OpenAI servers look at the completion alone, and so do we.
* A seed forks torch's RNG for the call, so a seeded call is reproducible and leaves the
  caller's RNG (a trainer's) untouched.
* A live model passed in (a trainer's policy) is switched to eval mode for the call and back
  after, and runs under ``no_grad`` rather than ``inference_mode``: tensors a model caches
  under inference mode cannot be used by autograd when training resumes.
* A prompt plus ``max_new_tokens`` never runs past the model's context
  (``max_position_embeddings``): a larger ``max_new_tokens`` is clamped to the room left after
  the batch's longest prompt, with a warning (the row ends as ``"length"``), and a prompt that
  leaves no room is an error naming both lengths. Without it a huge ``--max-new-tokens`` ran
  for ever, past the positions the model was trained on.
* ``generate(..., cancelled=f)``: ``f(i)`` says prompt ``i``'s request is gone (``quillrl
  serve``'s scheduler); its row stops at the next token and batches of such rows are skipped,
  so a client that left does not keep the model busy. Its result is an empty ``"cancelled"``.

One batch's decoding (the generation config, stop strings, log-probabilities, the context clamp,
the seeded RNG) is in :mod:`.local_generate`; this module batches, locks and counts, and scores
choices.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..errors import ConfigError
from ..models import DEFAULT_MODEL
from .base import Backend, Generation, Prompt, SamplingParams, UsageCounter
from .decoding import finish_row  # noqa: F401  (re-exported: tests and callers import it from here)
from .kept_cache import GENERATION_CACHE_BYTES, KeptCaches, common_prefix_len
from .local_generate import TokenTexts, eos_ids, fit_context, generate_batch, seeded
from .prompts import encode, encode_choices

# below this many shared tokens a separate prefix pass costs more than it saves
MIN_SHARED_PREFIX = 16

class LocalBackend(Backend):
    """A transformers causal LM in this process.

    ``model`` is an embedded model name, a local model directory, or an already-loaded
    ``(model, tokenizer)`` pair (used as is: not moved, not copied, so ``device`` and
    ``dtype`` only apply when loading). ``device`` defaults to ``cuda`` when available;
    ``dtype`` to bfloat16 on a GPU that supports it, else float32.
    Calls are serialised by a lock, so one backend can be shared between threads.
    ``prefix_cache`` (default on): ``choice_probs`` batches prompts that share a prefix and runs
    that prefix once into a KV cache (a judge's pivot comparisons share the system message, the
    writing prompt and, in one order, the pivot story); the probabilities are those of a full
    pass, to float rounding.
    ``generation_cache_bytes``: the most KV cache kept for reuse inside
    :meth:`reusing_generation_cache`; beyond it, later batches are simply not kept.
    """

    name = "local"

    def __init__(self, model: str | Path | tuple[Any, Any] = DEFAULT_MODEL, *, batch_size: int = 8,
                 device: str | None = None, dtype: Any = None, prefix_cache: bool = True,
                 generation_cache_bytes: int = GENERATION_CACHE_BYTES):
        import torch

        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if isinstance(model, (tuple, list)):
            if len(model) != 2:
                raise ConfigError("pass a model name/path or a (model, tokenizer) pair")
            self.model, self.tokenizer = model
            # getattr throughout: a trainer may hand over a wrapped model without `.config`
            config = getattr(self.model, "config", None)
            self.model_name = str(getattr(config, "_name_or_path", "") or "model")
        else:
            from .. import models

            device = device or ("cuda" if torch.cuda.is_available() else "cpu")
            if device.startswith("cuda") and not torch.cuda.is_available():
                raise ConfigError(f"device '{device}' asked for, but torch sees no CUDA GPU here; "
                                  "use device='cpu' or leave it unset")
            self.model, self.tokenizer = models.load(model, dtype=_torch_dtype(dtype, device),
                                                     device=device)
            self.model_name = str(model)
        self.batch_size, self.prefix_cache = batch_size, bool(prefix_cache)
        self.generation_cache_bytes = int(generation_cache_bytes)
        self._kept: KeptCaches | None = None  # only inside reusing_generation_cache()
        self.usage = UsageCounter()
        self._lock = threading.RLock()
        self._pad_id = _first_not_none(self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0)
        self._eos_ids = eos_ids(self.model, self.tokenizer)
        self._tokens = TokenTexts(self.tokenizer)
        self._keep_last: bool | None = None
        self._warned_clamp = False  # the context clamp warns once per backend

    def __repr__(self) -> str:
        return f"LocalBackend(model={self.model_name!r}, batch_size={self.batch_size}, device={self.device})"

    @property
    def device(self) -> Any:
        dev = getattr(self.model, "device", None)
        return dev if dev is not None else next(self.model.parameters()).device

    @contextlib.contextmanager
    def reusing_generation_cache(self) -> Iterator[None]:
        """Keep ``generate``'s KV caches for the ``choice_probs`` calls in this block (module
        docstring); they are released when it ends. Nested scopes share the outer one."""
        with self._lock:
            outer = self._kept is not None
            if not outer:
                self._kept = KeptCaches(self.generation_cache_bytes)
        try:
            yield
        finally:
            if not outer:
                with self._lock:
                    self._kept = None

    # ------------------------------------------------------------------ generation

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams, *,
                 cancelled: Callable[[int], bool] | None = None) -> list[Generation]:
        params.validate()
        prompts = list(prompts)
        encoded = [encode(self.tokenizer, p) for p in prompts]
        results: list[Generation | None] = [None] * len(prompts)
        start = time.perf_counter()
        with self._lock, _eval_no_grad(self.model), seeded(params.seed, self.device):
            for idx in _length_batches(encoded, self.batch_size):
                if cancelled is not None and all(cancelled(i) for i in idx):
                    for i in idx:
                        results[i] = Generation(text="", finish_reason="cancelled",
                                                prompt_tokens=len(encoded[i]), completion_tokens=0)
                    continue
                t0 = time.perf_counter()
                rows_gone = None if cancelled is None else (lambda r, idx=idx: cancelled(idx[r]))
                gens = self._generate_batch([encoded[i] for i in idx],
                                            self._fit_context([encoded[i] for i in idx], params),
                                            rows_gone)
                share = (time.perf_counter() - t0) / len(idx)
                for i, g in zip(idx, gens):
                    g.seconds = share
                    results[i] = g
        self.usage.calls += len(prompts)
        self.usage.prompt_tokens += sum(map(len, encoded))
        self.usage.completion_tokens += sum(g.completion_tokens for g in results)
        self.usage.seconds += time.perf_counter() - start
        return results  # type: ignore[return-value]

    @property
    def context_window(self) -> int | None:
        """The model's context in tokens (``max_position_embeddings``), if its config says."""
        n = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        return int(n) if isinstance(n, int) and n > 0 else None

    def _fit_context(self, rows: list[list[int]], params: SamplingParams) -> SamplingParams:
        """:func:`~quillrl.backends.local_generate.fit_context`, warning once per backend."""
        fitted = fit_context(rows, params, self.context_window, self.model_name, warn=not self._warned_clamp)
        self._warned_clamp |= fitted is not params
        return fitted

    def _generate_batch(self, rows: list[list[int]], params: SamplingParams,
                        rows_gone: Callable[[int], bool] | None = None) -> list[Generation]:
        return generate_batch(self.model, self.tokenizer, rows, params, left_pad=self._left_pad,
                              eos_ids=self._eos_ids, pad_id=self._pad_id, tokens=self._tokens,
                              kept=self._kept, rows_gone=rows_gone)

    # ------------------------------------------------------------------ choice scoring

    def choice_probs(self, prompts: Sequence[Prompt], choices: Sequence[str]) -> np.ndarray:
        import torch

        prompts, choices = list(prompts), list(choices)
        encoded, ids = encode_choices(self.tokenizer, prompts, choices)
        out = np.zeros((len(prompts), len(choices)), dtype=np.float64)
        start = time.perf_counter()
        batches = _prefix_batches if self.prefix_cache else _length_batches
        with self._lock, _eval_no_grad(self.model):
            rest = []
            for i, row in enumerate(encoded):
                kept, n = self._kept.longest_prefix(row) if self._kept else (None, 0)
                if n < MIN_SHARED_PREFIX:
                    rest.append(i)
                    continue
                probs = self._probs_after_cache(self._kept.cache_for(kept, n), n, [row[n:]])
                out[i] = probs[0, ids[i]].double().cpu().numpy()
            for part in batches([encoded[i] for i in rest], self.batch_size):
                idx = [rest[j] for j in part]
                probs = self._last_token_probs([encoded[i] for i in idx])
                wanted = torch.tensor([ids[i] for i in idx], device=probs.device)
                out[idx] = probs.gather(1, wanted).double().cpu().numpy()
        self.usage.calls += len(prompts)
        self.usage.prompt_tokens += sum(map(len, encoded))
        self.usage.seconds += time.perf_counter() - start
        return out

    def _last_token_probs(self, rows: list[list[int]]) -> Any:
        """Softmax over the vocabulary at each row's last position: a ``(rows, vocab)`` float32
        tensor: after a shared prefix's KV cache, row by row (CPU, unequal lengths), or one
        forward pass over the left-padded batch."""
        import torch

        shared = min(common_prefix_len(rows), min(map(len, rows)) - 1)
        if self.prefix_cache and len(rows) > 1 and shared >= MIN_SHARED_PREFIX:
            return self._probs_after_shared_prefix(rows, shared)
        if len(rows) > 1 and self.device.type == "cpu" and len(set(map(len, rows))) > 1:
            # On a CPU a padded batch is slower than its rows one by one: the padding mask
            # takes attention off the fused causal kernel (docs/results.md, "Judge speed").
            return torch.cat([self._padded_last_token_probs([r]) for r in rows])
        return self._padded_last_token_probs(rows)

    def _padded_last_token_probs(self, rows: list[list[int]]) -> Any:
        """One forward pass over the rows, left-padded: the GPU path (and the CPU path before
        prefix caching, which ``bench/judge_speed.py`` measures against)."""
        import torch

        input_ids, attention = self._left_pad(rows)
        # explicit positions: left padding must not shift a row's positions (absolute-position
        # models would otherwise read a padded row differently from the same row alone)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = self.model(input_ids=input_ids, attention_mask=attention,
                                position_ids=positions, use_cache=False,
                                **self._logits_to_keep()).logits[:, -1, :]
        return torch.softmax(logits.float(), dim=-1)

    def _probs_after_shared_prefix(self, rows: list[list[int]], shared: int) -> Any:
        """:meth:`_last_token_probs` for rows whose first ``shared`` tokens are the same: the
        prefix runs once (batch 1) into a KV cache, repeated over the rows, and only the
        suffixes run, batched (:meth:`_probs_after_cache`)."""
        import torch

        prefix = torch.tensor([rows[0][:shared]], dtype=torch.long, device=self.device)
        with torch.no_grad():
            cache = self.model(input_ids=prefix, use_cache=True, **self._logits_to_keep()).past_key_values
        cache.batch_repeat_interleave(len(rows))
        return self._probs_after_cache(cache, shared, [r[shared:] for r in rows])

    def _probs_after_cache(self, cache: Any, shared: int, suffixes: list[list[int]]) -> Any:
        """Last-position softmax of each suffix run after a KV cache of ``shared`` tokens (one
        row of it per suffix): suffixes left-padded between prefix and suffix with the pads
        masked out and explicit positions, so every row reads exactly what it reads alone."""
        import torch

        input_ids, attention = self._left_pad(suffixes)
        positions = shared + (attention.cumsum(-1) - 1).clamp(min=0)
        mask = torch.cat([torch.ones((len(suffixes), shared), dtype=attention.dtype,
                                     device=attention.device), attention], dim=1)
        with torch.no_grad():
            logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                                past_key_values=cache, use_cache=True,
                                **self._logits_to_keep()).logits[:, -1, :]
        return torch.softmax(logits.float(), dim=-1)

    # ------------------------------------------------------------------ helpers

    def _left_pad(self, rows: list[list[int]]) -> tuple[Any, Any]:
        import torch

        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self._pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
            attention[i, width - len(r):] = 1
        return input_ids.to(self.device), attention.to(self.device)

    def _logits_to_keep(self) -> dict:
        # Only the last position's logits are needed; models that accept `logits_to_keep` skip
        # the (batch x length x vocab) tensor. PEFT wrappers forward it to their base model.
        if self._keep_last is None:
            import inspect

            base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
            self._keep_last = "logits_to_keep" in inspect.signature(base.forward).parameters
        return {"logits_to_keep": 1} if self._keep_last else {}


def _prefix_batches(encoded: list[list[int]], batch_size: int) -> Iterator[list[int]]:
    # in token order, prompts that share a prefix are neighbours (a judge's pivot comparisons
    # share the system message and writing prompt, and in one order the pivot story too), so
    # each batch's shared prefix is as long as it gets; longest first within equal tokens
    order = sorted(range(len(encoded)), key=lambda i: (encoded[i], -len(encoded[i])))
    for s in range(0, len(order), batch_size):
        yield order[s:s + batch_size]


def _length_batches(encoded: list[list[int]], batch_size: int) -> Iterator[list[int]]:
    # longest first: similar lengths share a batch (less padding) and an out-of-memory error
    # shows up on the first batch rather than after an hour
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    for s in range(0, len(order), batch_size):
        yield order[s:s + batch_size]


@contextlib.contextmanager
def _eval_no_grad(model: Any) -> Iterator[None]:
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _torch_dtype(dtype: Any, device: str) -> Any:
    import torch

    if dtype is None:
        cuda = device.startswith("cuda") and torch.cuda.is_available()
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    if isinstance(dtype, str):
        value = getattr(torch, dtype, None)
        if not isinstance(value, torch.dtype):
            raise ConfigError(f"unknown dtype '{dtype}': use float32, bfloat16 or float16")
        return value
    return dtype


def _first_not_none(*values: Any) -> Any:
    return next(v for v in values if v is not None)
