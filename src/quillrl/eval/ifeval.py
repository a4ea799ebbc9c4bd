"""IFEval and IFBench on a policy, and the same run through lm-eval for a parity check.

``quillrl eval ifeval`` generates greedily with :func:`~quillrl.eval.generate.generate_responses`
and scores with the verifier (lm-eval's own IFEval checkers). :func:`lm_eval_ifeval` runs
lm-eval 0.4.13's ``ifeval`` task itself (``--apply_chat_template``, greedy, the same
``max_gen_toks`` and ``--limit``) offline, on the local JSONL, so that a test and
``bench/ifeval_parity.py`` can compare the two per prompt: response text, verdicts and the four
figures (docs/design.md, "Generation and IFEval").
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ..errors import ConfigError

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
