"""IFEval and IFBench on a policy, and the same run through lm-eval for a parity check.

``quillrl eval ifeval`` generates greedily with :func:`~quillrl.eval.generate.generate_responses`
and scores with the verifier (lm-eval's own IFEval checkers). :func:`lm_eval_ifeval` runs
lm-eval 0.4.13's ``ifeval`` task itself (``--apply_chat_template``, greedy, the same
``max_gen_toks`` and ``--limit``) offline, on the local JSONL, so that a test and
``bench/ifeval_parity.py`` can compare the two per prompt: response text, verdicts and the four
figures (docs/design.md, "Generation and IFEval").
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError

NAMED = 10  # ids listed in a summary before only counting them


# -- joining responses to tasks: one rule for verify, eval ifeval|ifbench|constraints|winrate ----

def response_key(response: Any) -> tuple[str, int]:
    """``(task id, sample index)`` of a response; a file without ``sample`` has sample 0."""
    return str(response.id), int(getattr(response, "sample", None) or 0)


def response_label(response: Any) -> str:
    """How a response is named in a summary: its id, else its prompt (flattened, cut at 60)."""
    if response.id is not None:
        return str(response.id)
    flat = " ".join((response.prompt or "").split())
    return repr(flat if len(flat) <= 60 else flat[:59] + "…")


def join(tasks: Sequence[Any], responses: Iterable[Any]) -> tuple[list[tuple[Any, Any]], dict[str, Any]]:
    """``[(task, response)]`` in task order then sample order, and what did not join.

    A response joins its task by id when its id is a task's; otherwise by its prompt, exact,
    then stripped on both sides (as IFEval's and IFBench's evaluations join files whose ids are
    another numbering). A second response for one (task, sample) is a duplicate: the first in
    the file is kept. ``left``: ``unmatched`` (labels of responses matching no task),
    ``duplicates`` (their count) and ``duplicate`` (the responses), ``unanswered`` (task ids).

    >>> from types import SimpleNamespace as R
    >>> tasks = [R(id="t1", prompt="Hi "), R(id="t2", prompt="Bye")]
    >>> pairs, left = join(tasks, [R(id="x", prompt="Hi", sample=None, response="a"),
    ...                            R(id="t1", prompt=None, sample=None, response="b"),
    ...                            R(id="zz", prompt="?", sample=None, response="c")])
    >>> [(t.id, r.response) for t, r in pairs], left["unmatched"], left["unanswered"]
    ([('t1', 'a')], ['zz'], ['t2'])
    """
    by_id = {t.id: t for t in tasks}
    by_prompt: dict[str, Any] = {}
    for t in tasks:
        by_prompt.setdefault(t.prompt, t)
    for t in tasks:
        by_prompt.setdefault(t.prompt.strip(), t)
    found: dict[tuple[str, int], Any] = {}
    unmatched, duplicate = [], []
    for r in responses:
        task = by_id.get(r.id) if r.id is not None else None
        if task is None and r.prompt is not None:
            task = by_prompt.get(r.prompt) or by_prompt.get(r.prompt.strip())
        if task is None:
            unmatched.append(response_label(r))
            continue
        key = (task.id, response_key(r)[1])
        if key in found:
            duplicate.append(r)
            continue
        found[key] = r
    order = {t.id: i for i, t in enumerate(tasks)}
    pairs = [(by_id[tid], found[(tid, k)]) for tid, k in sorted(found, key=lambda x: (order[x[0]], x[1]))]
    answered = {tid for tid, _ in found}
    return pairs, {"unmatched": unmatched, "duplicates": len(duplicate), "duplicate": duplicate,
                   "unanswered": [t.id for t in tasks if t.id not in answered]}


def join_responses(tasks: list, responses: list) -> tuple[list[tuple[Any, Any]], dict[str, list]]:
    """Each task with its first response (:func:`join`; the lowest sample), or None.

    Returns ``[(task, response or None)]`` in task order, and the responses left over:
    ``"unmatched"`` (labels: no task has their id or prompt) and ``"duplicate"`` (a second
    response to a task that already has one; only the first is judged)."""
    pairs, left = join(tasks, responses)
    first: dict[str, Any] = {}
    extra = list(left["duplicate"])
    for task, response in pairs:
        if task.id in first:
            extra.append(response)
        else:
            first[task.id] = response
    return ([(t, first.get(t.id)) for t in tasks],
            {"unmatched": left["unmatched"], "duplicate": [response_label(r) for r in extra]})


def verify_task(task, response, free_text_verifier: Any = None) -> dict[str, Any]:
    """Strict and loose verdicts for one task (a missing response fails every constraint)."""
    from ..constraints import verify

    if response is None:
        failed = [{"id": c.id, "kwargs": c.kwargs, "strict": False, "loose": False,
                   "reason": "no response"} for c in task.constraints]
        return {"id": task.id, "has_response": False, "strict": False, "loose": False,
                "constraints": failed}
    strict = verify(response.response, task.constraints, prompt=task.prompt,
                    free_text_verifier=free_text_verifier)
    loose = verify(response.response, task.constraints, loose=True, prompt=task.prompt,
                   free_text_verifier=free_text_verifier)
    verdicts = [{"id": c.id, "kwargs": c.kwargs, "strict": s.passed, "loose": l.passed,
                 "reason": s.reason, "loose_reason": l.reason}
                for c, s, l in zip(task.constraints, strict.results, loose.results)]
    return {"id": task.id, "has_response": True, "strict": strict.passed, "loose": loose.passed,
            "constraints": verdicts}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """IFEval's four accuracies, as fractions, with the count of undecided verdicts
    (:func:`~quillrl.constraints.count_verdicts`, the rule training counts by)."""
    from ..constraints import count_verdicts

    n = len(rows)
    verdicts = [c for row in rows for c in row["constraints"]]
    n_inst = len(verdicts)

    def share(hits: int, total: int) -> float | None:
        return hits / total if total else None

    return {
        "n": n,
        "prompt_level_strict_acc": share(sum(row["strict"] for row in rows), n),
        "inst_level_strict_acc": share(sum(c["strict"] is True for c in verdicts), n_inst),
        "prompt_level_loose_acc": share(sum(row["loose"] for row in rows), n),
        "inst_level_loose_acc": share(sum(c["loose"] is True for c in verdicts), n_inst),
        "n_instructions": n_inst,
        "undecided_strict": count_verdicts(c["strict"] for c in verdicts).undecided,
        "undecided_loose": count_verdicts(c["loose"] for c in verdicts).undecided,
    }


# lm-eval's task defaults (lm_eval/tasks/ifeval/ifeval.yaml)
IFEVAL_MAX_NEW_TOKENS = 1280
METRICS = ("prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc",
           "inst_level_loose_acc")

_TASK_YAML = """\
include: {ifeval_yaml}
task: {name}
dataset_path: json
dataset_name: null
dataset_kwargs:
  data_files:
    train: {data}
"""


def lm_eval_ifeval(model_dir: str | Path, tasks_path: str | Path, *, limit: int | None = None,
                   max_gen_toks: int = IFEVAL_MAX_NEW_TOKENS, batch_size: int = 8,
                   dtype: str = "float32", cache: str | Path | None = None) -> dict[str, Any]:
    """Run lm-eval's own ``ifeval`` task on a local model directory and IFEval-format JSONL.

    The task is lm-eval's YAML, included as is, with only the data source changed to the local
    file (``dataset_path: json``); lm-eval takes the first ``limit`` documents in file order.
    Returns ``{"metrics": {the four, as fractions}, "n", "responses": {key: text},
    "verdicts": {key: {"strict": [...], "loose": [...]}}}`` (one boolean per instruction).
    ``cache`` is lm-eval's ``--use_cache`` sqlite prefix: each response is stored as it comes,
    so a killed run resumes (the prompts left are then batched anew).
    """
    from ..constraints.ifeval import lm_eval_registry

    lm_eval_registry()  # offline punkt data and a seeded langdetect, as our verifier has them
    import lm_eval
    from lm_eval.tasks import TaskManager

    ifeval_yaml = Path(lm_eval.__file__).parent / "tasks" / "ifeval" / "ifeval.yaml"
    if not ifeval_yaml.exists():
        raise ConfigError(f"lm-eval {lm_eval.__version__} has no ifeval task at {ifeval_yaml}")
    name = "quillrl_ifeval_local"
    with tempfile.TemporaryDirectory(prefix="quillrl-lmeval-") as tmp:
        (Path(tmp) / f"{name}.yaml").write_text(_TASK_YAML.format(
            ifeval_yaml=ifeval_yaml, name=name, data=Path(tasks_path).resolve()))
        results = lm_eval.simple_evaluate(
            model="hf", model_args=f"pretrained={Path(model_dir).resolve()},dtype={dtype}",
            tasks=[name], task_manager=TaskManager(include_path=tmp), apply_chat_template=True,
            limit=limit, batch_size=batch_size, gen_kwargs=f"max_gen_toks={max_gen_toks}",
            log_samples=True, device="cpu", use_cache=str(cache) if cache else None)
    figures = results["results"][name]
    samples = results["samples"][name]
    return {
        "n": len(samples),
        "metrics": {m: float(figures[f"{m},none"]) for m in METRICS},
        "responses": {str(s["doc"]["key"]): s["filtered_resps"][0] for s in samples},
        "verdicts": {str(s["doc"]["key"]): {"strict": list(s["inst_level_strict_acc"]),
                                            "loose": list(s["inst_level_loose_acc"])}
                     for s in samples},
    }


def parity_report(rows: list[dict[str, Any]], summary: dict[str, Any],
                  responses: dict[str, str], lm: dict[str, Any], *, shown: int = 5) -> dict[str, Any]:
    """Compare our run with lm-eval's, prompt by prompt.

    ``rows`` are ``quillrl verify``'s per-task rows (``id``, ``constraints[i].strict/.loose``),
    ``summary`` their four metrics, ``responses`` our text by task id, ``lm`` what
    :func:`lm_eval_ifeval` returned. Returns counts of prompts with the same text and the same
    verdicts, each metric side by side with its absolute difference, and the first differing
    ids. Parity holds when every count equals ``n`` and every difference is 0.
    """
    ids = [row["id"] for row in rows if row["id"] in lm["responses"]]
    by_id = {row["id"]: row for row in rows}
    text_diff = [i for i in ids if responses.get(i) != lm["responses"][i]]
    verdict_diff = [i for i in ids if not _same_verdicts(by_id[i], lm["verdicts"][i])]
    metrics = {m: {"quillrl": summary[m], "lm_eval": lm["metrics"][m],
                   "abs_diff": abs(summary[m] - lm["metrics"][m])} for m in METRICS}
    return {"n": len(ids), "n_quillrl": len(rows), "n_lm_eval": lm["n"],
            "same_text": len(ids) - len(text_diff), "same_verdicts": len(ids) - len(verdict_diff),
            "metrics": metrics, "text_differs": text_diff[:shown],
            "verdicts_differ": verdict_diff[:shown],
            "parity": not text_diff and not verdict_diff and len(ids) == lm["n"] == len(rows)
            and all(v["abs_diff"] == 0 for v in metrics.values())}


def _same_verdicts(row: dict[str, Any], lm_verdicts: dict[str, list]) -> bool:
    ours = [c["strict"] for c in row["constraints"]], [c["loose"] for c in row["constraints"]]
    return ours == (lm_verdicts["strict"], lm_verdicts["loose"])


# -- eval ifeval|ifbench: generate greedily, verify, summarize -----------------------------------

GENERATION_KEYS = ("generated", "resumed", "tokens", "tokens_per_s", "clipped", "backend", "out")


@dataclass(frozen=True)
class BenchmarkOptions:
    """One ``quillrl eval ifeval|ifbench`` run (its CLI options, typed)."""

    name: str
    """``ifeval`` or ``ifbench``: names the default output folder."""
    model: str
    """A model spec (``quillrl.eval.generate.spec_forms``)."""
    tasks: Path
    """The benchmark's tasks (IFEval's or IFBench's raw JSONL, or quillrl tasks)."""
    out: Path | None = None
    """Responses JSONL, resumed by a rerun; default ``runs/eval-<name>/<model>-<tokens>.jsonl``."""
    limit: int | None = None
    """Only the first N prompts in file order (as lm-eval's ``--limit``)."""
    max_new_tokens: int = IFEVAL_MAX_NEW_TOKENS
    """As lm-eval's ``max_gen_toks`` for ifeval."""
    batch_size: int = 8
    """Prompts per batch (local) or requests in flight (openai)."""
    verdicts: Path | None = None
    """Write one line per task with every constraint's verdict and reason."""
    backend: str = "local"
    """``local``, ``vllm`` or ``openai``."""
    backend_options: dict | None = None
    """Engine options for the backend (``--vllm-option``: quillrl.backends.vllm_options)."""

    def resolved(self) -> BenchmarkOptions:
        """These options with the default output path filled in."""
        if self.out is not None:
            return self
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", self.model.strip("/")).strip("_")[-80:] or "model"
        return replace(self, out=Path("runs") / f"eval-{self.name}" / f"{slug}-{self.max_new_tokens}.jsonl")


def run_benchmark(options: BenchmarkOptions, tasks: Sequence[Any]) -> dict[str, Any]:
    """Generate greedily (resuming ``options.out``), verify sample 0 of every task, and return
    the summary of ``eval ifeval|ifbench``: IFEval's four metrics, ``n`` and the generation's
    counts. ``tasks`` are the benchmark's tasks, read."""
    from ..data import read_responses, write_jsonl
    from .generate import generate_responses

    options = options.resolved()
    tasks = list(tasks)[:options.limit] if options.limit else list(tasks)
    generation = generate_responses(options.model, tasks, options.out,
                                    max_new_tokens=options.max_new_tokens,
                                    batch_size=options.batch_size, backend=options.backend,
                                    backend_options=options.backend_options)
    joined, _ = join_responses(tasks, [r for r in read_responses(options.out).records if r.sample == 0])
    rows = [verify_task(task, response) for task, response in joined]
    if options.verdicts is not None:
        write_jsonl(options.verdicts, rows)
    summary = summarize(rows)
    summary.update({k: generation[k] for k in GENERATION_KEYS}, tasks=str(options.tasks))
    return summary
