"""The local backend's decoding loop: one batch of ``model.generate`` under our rules, and what
it needs around it (the context clamp, a forked RNG for a seed, the EOS ids, token texts).

:class:`~quillrl.backends.local.LocalBackend` batches, locks and counts; everything that runs
one batch of rows to :class:`~quillrl.backends.base.Generation` s is here. Why each rule departs
from plain ``model.generate`` is in :mod:`quillrl.backends.local`'s docstring; the per-step
pieces (stop strings, abandoned rows, log-probabilities, where a row ends) are in
:mod:`.decoding`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import ConfigError
from .base import Generation, SamplingParams
from .decoding import LogprobRecorder, RowsGone, StopStrings, finish_row
from .kept_cache import KeptCaches

log = logging.getLogger(__name__)


class TokenTexts:
    """Each token id's text (special tokens kept), decoded once per id, for log-probabilities."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self._text: dict[int, str] = {}

    def text_of(self, token_id: int) -> str:
        text = self._text.get(token_id)
        if text is None:
            text = self.tokenizer.decode([token_id], skip_special_tokens=False)
            self._text[token_id] = text
        return text

    def top_dict(self, values: np.ndarray, ids: np.ndarray) -> dict[str, float]:
        top: dict[str, float] = {}
        for v, i in zip(values.tolist(), ids.tolist()):
            top.setdefault(self.text_of(i), v)  # two ids can decode alike; keep the likelier
        return top


def fit_context(rows: list[list[int]], params: SamplingParams, context: int | None,
                model_name: str, warn: bool = True) -> SamplingParams:
    """``params`` with ``max_new_tokens`` clamped to the ``context`` left after the longest row
    (logged when ``warn``); a row that leaves no room is a ConfigError. ``context`` None: as given."""
    if context is None:
        return params
    longest = max(map(len, rows))
    if longest >= context:
        raise ConfigError(f"a prompt of {longest} tokens does not fit the model's context of "
                          f"{context} tokens ({model_name}); shorten it")
    room = context - longest
    if params.max_new_tokens <= room:
        return params
    if warn:
        log.warning("max_new_tokens %d is more than the model's context of %d leaves after "
                    "a %d-token prompt; generating at most %d tokens", params.max_new_tokens,
                    context, longest, room)
    return dataclasses.replace(params, max_new_tokens=room)


def generate_batch(model: Any, tokenizer: Any, rows: list[list[int]], params: SamplingParams, *,
                   left_pad: Callable[[list[list[int]]], tuple[Any, Any]], eos_ids: set[int], pad_id: int,
                   tokens: TokenTexts, kept: KeptCaches | None = None,
                   rows_gone: Callable[[int], bool] | None = None) -> list[Generation]:
    """One ``model.generate`` call over ``rows`` (token ids, left-padded by ``left_pad``): a
    generation config built from ``params`` alone, stop strings matched on the generated text,
    abandoned rows stopped (``rows_gone``), log-probabilities recorded before the warpers; each
    row finished by :func:`~quillrl.backends.decoding.finish_row`. ``kept``: where each row's KV
    cache is kept for the probes that follow (a reasoning judge's scope)."""
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

    input_ids, attention = left_pad(rows)
    do_sample = params.temperature > 0
    # Explicit neutral values, so the model's generation_config cannot add its own rules
    # (unset fields are filled from it). The warpers only exist when sampling, and
    # transformers warns about them otherwise.
    warpers = dict(temperature=params.temperature, top_p=params.top_p, top_k=0, min_p=0.0,
                   typical_p=1.0) if do_sample else {}
    config = GenerationConfig(
        max_new_tokens=params.max_new_tokens, do_sample=do_sample, **warpers,
        repetition_penalty=1.0, no_repeat_ngram_size=0, min_new_tokens=0,
        eos_token_id=sorted(eos_ids), pad_token_id=pad_id,
        return_dict_in_generate=True,
    )
    recorder = None if params.logprobs is None else LogprobRecorder(params.logprobs)
    stoppers = [StopStrings(params.stop, input_ids.shape[1], tokenizer)] if params.stop else []
    if rows_gone is not None:
        stoppers.append(RowsGone(rows_gone))
    out = model.generate(
        input_ids=input_ids, attention_mask=attention, generation_config=config,
        logits_processor=LogitsProcessorList([recorder]) if recorder else None,
        stopping_criteria=StoppingCriteriaList(stoppers) if stoppers else None,
    )
    new = out.sequences[:, input_ids.shape[1]:]
    if kept is not None:
        kept.add_batch(out.past_key_values, rows, new, input_ids.shape[1])
    logprobs = recorder.collect(new) if recorder else None
    gens = []
    for r, row in enumerate(new.tolist()):
        text, reason, n = finish_row(
            row, eos_ids=eos_ids, pad_id=pad_id, max_new_tokens=params.max_new_tokens, stop=params.stop,
            decode=lambda ids: tokenizer.decode(ids, skip_special_tokens=True),
        )
        gen = Generation(text=text, finish_reason=reason, prompt_tokens=len(rows[r]), completion_tokens=n)
        if logprobs is not None:
            chosen, top_vals, top_ids = (a[:n, r] for a in logprobs)
            gen.tokens = [tokens.text_of(t) for t in row[:n]]
            gen.token_logprobs = [float(x) for x in chosen]
            gen.top_logprobs = [tokens.top_dict(v, i) for v, i in zip(top_vals, top_ids)]
        gens.append(gen)
    return gens


@contextlib.contextmanager
def seeded(seed: int | None, device: Any) -> Iterator[None]:
    """torch's RNG forked for the block and seeded with ``seed`` (None: untouched), so a seeded
    call is reproducible and leaves the caller's RNG (a trainer's) as it was."""
    import torch

    if seed is None:
        yield
        return
    devices = [device] if getattr(device, "type", str(device)) == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """The ids that end a row: the model's generation config's EOS ids and the tokenizer's."""
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(ids if isinstance(ids, (list, tuple)) else [] if ids is None else [ids])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
