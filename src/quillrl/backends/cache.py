"""A response cache in front of any backend, so a rerun or a crash never pays for a call twice.

:class:`CachedBackend` wraps a :class:`~quillrl.backends.base.Backend`. Every ``generate`` and
``choice_probs`` answer is keyed by ``(teacher, template version, prompt, sampling params)``
(or the choices, for ``choice_probs``) and appended to a JSONL file as soon as its batch
returns; a prompt whose key is in the file is answered from it, and only the misses reach the
backend, in one call. The file records its teacher and template on every line; opening it for
another teacher or template version is refused with the difference named, since a cached
judgment from another judge or prompt would silently stand in for this one's.

Limits and accounting, for paid or shared teachers: ``max_rps`` caps the prompts sent per
second (misses are sent in chunks of at most ``max_rps`` with the wait in between; concurrency
within a chunk is the backend's own, e.g. the openai backend's ``max_concurrency``).
``usage`` counts only what reached the backend (prompts, tokens); ``usage.extra`` adds
``cache_hits``, ``cache_misses`` and the tokens the hits saved. With ``temperature > 0`` a
cached prompt replays its cached sample rather than drawing a new one (the seed is in the key).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..data.resumable import ResumableJsonl
from ..errors import ConfigError
from .base import Backend, ChatPrompt, Generation, Prompt, SamplingParams, UsageCounter

_GENERATION_FIELDS = ("text", "finish_reason", "prompt_tokens", "completion_tokens", "tokens",
                      "token_logprobs", "top_logprobs")


def _prompt_json(prompt: Prompt) -> Any:
    if isinstance(prompt, ChatPrompt):
        return {"messages": [dict(m) for m in prompt.messages], "assistant_prefix": prompt.assistant_prefix}
    return prompt


class ResponseCache:
    """An append-only JSONL file of answers for one ``(teacher, template)``, written through
    :class:`~quillrl.data.resumable.ResumableJsonl`, the one resumable writer: every line
    carries the teacher and template (another one's file is refused, naming the difference),
    each answer is one flushed line, and a last line cut mid-write (a crash) is dropped on
    reopening, so its answer is asked again and the file stays valid; any other bad line makes
    the file foreign, refused untouched with its file and line.

    Each line: ``{"key", "teacher", "template", "kind", "value"}``. The key is a digest of all
    that shaped the answer (teacher, template, kind, prompt, sampling settings or choices), so
    lines need no separate ``inputs`` digests: changed inputs are a new key, never a stale hit.
    """

    def __init__(self, path: str | Path, teacher: str, template: str):
        self.path, self.teacher, self.template = Path(path), teacher, template
        self._file = ResumableJsonl(
            self.path, settings={"teacher": teacher, "template": template},
            key=lambda row: row["key"], required=("key", "kind"), command="distill --cache",
            option="--cache", noun="response cache",
            hint="its answers would stand in for another judge's. Pass another {option} file "
                 "(or delete this one)")
        self.entries: dict[str, Any] = {k: row["value"] for k, row in self._file.records.items()}

    def key(self, kind: str, prompt: Prompt, settings: Any) -> str:
        payload = {"teacher": self.teacher, "template": self.template, "kind": kind,
                   "prompt": _prompt_json(prompt), "settings": settings}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def put(self, key: str, kind: str, value: Any) -> None:
        self._file.write({"key": key, "teacher": self.teacher, "template": self.template,
                          "kind": kind, "value": value})
        self.entries[key] = value

    def close(self) -> None:
        self._file.close()


class CachedBackend(Backend):
    """``backend`` behind a :class:`ResponseCache` and an optional rate limit (module docstring)."""

    def __init__(self, backend: Backend, cache: ResponseCache, *, max_rps: float | None = None):
        if max_rps is not None and max_rps <= 0:
            raise ConfigError(f"max_rps must be > 0 (prompts per second), got {max_rps}")
        self.backend, self.cache, self.max_rps = backend, cache, max_rps
        self.name = getattr(backend, "name", type(backend).__name__)
        self.usage = UsageCounter(extra={"cache_hits": 0, "cache_misses": 0,
                                         "saved_prompt_tokens": 0, "saved_completion_tokens": 0})
        self._last_send = 0.0

    def __repr__(self) -> str:
        return f"CachedBackend({self.backend!r}, cache={str(self.cache.path)!r})"

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[Generation]:
        settings = asdict(params.validate())
        rows = self._answer("generate", list(prompts), settings,
                            lambda todo: [_generation_row(g) for g in self.backend.generate(todo, params)])
        return [Generation(**row) for row in rows]

    def reusing_generation_cache(self):
        return self.backend.reusing_generation_cache()

    def choice_probs(self, prompts: Sequence[Prompt], choices: Sequence[str]) -> np.ndarray:
        rows = self._answer("choice_probs", list(prompts), list(choices),
                            lambda todo: np.asarray(self.backend.choice_probs(todo, choices), dtype=float).tolist())
        return np.array(rows, dtype=np.float64).reshape(len(prompts), len(choices))

    def _answer(self, kind: str, prompts: list[Prompt], settings: Any,
                call: Callable[[list[Prompt]], list]) -> list:
        keys = [self.cache.key(kind, p, settings) for p in prompts]
        cached = [k in self.cache.entries for k in keys]
        fresh: dict[str, Prompt] = {}  # each missing key once, in order
        for k, p, hit in zip(keys, prompts, cached):
            if not hit:
                fresh.setdefault(k, p)
        todo, before = list(fresh.items()), self.backend.usage.prompt_tokens
        size = max(1, int(self.max_rps)) if self.max_rps else max(1, len(todo))
        for start in range(0, len(todo), size):
            part = todo[start:start + size]
            self._wait_for_rate(len(part))
            t0 = time.perf_counter()
            for (k, _), value in zip(part, call([p for _, p in part])):
                self.cache.put(k, kind, value)
                if kind == "generate":  # a generation carries its own token counts
                    self.usage.prompt_tokens += value["prompt_tokens"]
                    self.usage.completion_tokens += value["completion_tokens"]
            self.usage.seconds += time.perf_counter() - t0
            self.usage.calls += len(part)
        if kind == "choice_probs":  # returns no counts: what the backend says it read
            self.usage.prompt_tokens += (self.backend.usage.prompt_tokens or 0) - (before or 0)
        self.usage.count("cache_hits", sum(cached))
        self.usage.count("cache_misses", len(todo))
        for k, hit in zip(keys, cached):
            if hit and kind == "generate":
                self.usage.count("saved_prompt_tokens", self.cache.entries[k]["prompt_tokens"])
                self.usage.count("saved_completion_tokens", self.cache.entries[k]["completion_tokens"])
        return [self.cache.entries[k] for k in keys]

    def _wait_for_rate(self, n: int) -> None:
        """Sleep so that at most ``max_rps`` prompts are sent per second, on average."""
        if not self.max_rps:
            return
        ready = self._last_send + n / self.max_rps
        now = time.monotonic()
        if ready > now and self._last_send:
            time.sleep(ready - now)
        self._last_send = time.monotonic()

    def close(self) -> None:
        self.cache.close()
        self.backend.close()


def _generation_row(gen: Generation) -> dict:
    return {f: getattr(gen, f) for f in _GENERATION_FIELDS}
