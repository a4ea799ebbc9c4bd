"""Importers of writing tasks: IFEval, IFBench, WQRM, WritingBench (length, format, style), EQ-Bench.

Choices that are ours, not the data sets':

- WQRM: the instruction's ``voice`` becomes ``creative:point_of_view`` (its first word:
  first/second/third, so "first person plural" is first person and "third person with brief
  dialogue in first person" is third, the dialogue being outside what the check judges), and
  ``word_count`` (the length of the human original the plot summarises) becomes
  ``creative:word_range`` of ±20% (``lengths.ABOUT_TOLERANCE``). ``reference`` is the draft the
  annotators ranked best (2 points for "Most Preferred", 1 for "Second Favorite", summed over
  annotators); a tie leaves no reference. 33 items carry only a plot label such as
  ``llama_marketing_food_processor`` and no instruction to write from; they are skipped.
- WritingBench: one importer per subset, reading ``<subset>_subset.jsonl`` (the ``_C`` files hold
  the same queries with one to three category-specific criteria instead of five). Every task
  carries its query's rubric as ``criteria`` (``name`` and ``criteria_description``; the five
  score bands grade a pointwise 1-10 score, which a pairwise judge does not give, and would
  multiply the principle's length by six), so the judge of its responses is conditioned on it.
  ``writingbench-length`` also turns the stated length into ``creative:word_range``; its Chinese
  queries state lengths in characters (字), which ``creative:word_range`` does not count, so they
  are skipped with their own reason rather than given a word range that would misjudge them.
  ``writingbench-format`` and ``writingbench-style`` have no constraint to derive and keep every
  query, Chinese ones included (``language`` says which). A query found in two subsets (58 in
  length and format, 125 in format and style) is a task in each, under each subset's rubric.
- EQ-Bench: one task per (prompt, seed modifier), ``<SEED>`` replaced by the modifier; ids are
  ``eqbench-<prompt key>-<seed number>``, and the train/test split keeps a prompt's seeds together.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .importers import Importer, ImportReport, parsed_items, register, source_file
from .jsonl import json_lines, load_json_file
from .lengths import about, parse_word_requirement
from .readers import read_task_records
from .records import WritingTask

IFEVAL_FILE = "ifeval/input_data.jsonl"
IFBENCH_FILE = "ifbench/IFBench_test.jsonl"
WQRM_FILE = "preferences/creativity_eval/wqrm_annotations.json"
WRITINGBENCH_FILE = "prompts/writingbench/{subset}/{subset}_subset.jsonl"
WRITINGBENCH_LENGTH_FILE = WRITINGBENCH_FILE.format(subset="length")
EQBENCH_FILE = "prompts/eqbench/creative_writing_prompts_v3.json"

# Above this a stated length describes the work being planned (a 100,000-word novel for an
# outline), not one response, so no word range is derived from it.
MAX_RESPONSE_WORDS = 20_000
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


def _with_source(task: WritingTask, source: str) -> WritingTask:
    return WritingTask.model_validate({**task.to_json_dict(), "source": source})


def _raw_tasks(relative: str, source: str):
    def read(root: Path, report: ImportReport) -> Iterator[WritingTask]:
        result = read_task_records(source_file(root, relative, report), skip_invalid=True)
        report.read += len(result.records) + len(result.skipped)
        for skipped in result.skipped:
            report.skip(skipped.kind, f"line {skipped.line}: {skipped.reason}")
        for task in result:
            yield _with_source(task, source)

    return read


# --- WQRM -------------------------------------------------------------------------------------

_RANK_POINTS = {"Most Preferred Writing Option": 2, "Second Favorite Writing Option": 1,
                "Least Preferred Writing Option": 0}
_PERSON = re.compile(r"^\s*(first|second|third)\b", re.I)


def best_ranked_draft(item: dict[str, Any]) -> str | None:
    """The draft with the most ranking points over all annotators; None on a tie or no votes."""
    points: dict[str, int] = {}
    for annotation in item.get("annotations") or []:
        if not isinstance(annotation, dict):
            continue
        for draft, rank in annotation.items():
            if rank in _RANK_POINTS:
                points[draft] = points.get(draft, 0) + _RANK_POINTS[rank]
    if not points:
        return None
    top = max(points.values())
    leaders = [d for d, p in points.items() if p == top]
    draft = item.get(leaders[0]) if len(leaders) == 1 else None
    text = draft.get("candidate") if isinstance(draft, dict) else None
    return text.strip() if isinstance(text, str) and text.strip() else None


def wqrm_task(item: Any) -> WritingTask | str:
    """A WQRM item as a task, or the reason it cannot be one."""
    if not isinstance(item, dict) or not isinstance(item.get("instruction"), dict):
        return "no 'instruction' object"
    inst = item["instruction"]
    plot = inst.get("plot")
    if not isinstance(plot, str) or not plot.strip():
        return "no plot"
    if not re.search(r"\s", plot.strip()):
        return "plot is only a label, no instruction"
    constraints, wording = [], ""
    voice = inst.get("voice")
    if voice is not None:
        person = _PERSON.match(str(voice))
        if not person:
            return "unrecognised voice"
        constraints.append({"id": "creative:point_of_view",
                            "kwargs": {"person": person.group(1).lower()}})
        wording += f" in the {voice}"
    words = inst.get("word_count")
    if words is not None:
        if not isinstance(words, int) or isinstance(words, bool) or words <= 0:
            return "word_count is not a positive integer"
        lo, hi = about(words)
        constraints.append({"id": "creative:word_range",
                            "kwargs": {"min_words": lo, "max_words": hi}})
        wording += f", about {words} words long"
    genre = str(item.get("genre") or "writing")
    prompt = f"Write a piece of {genre}{wording}, following this outline:\n\n{plot.strip()}"
    extra = {k: item[k] for k in ("genre", "llm") if k in item}
    if isinstance(inst.get("paragraph"), str):
        extra["original_paragraph"] = inst["paragraph"]
    return WritingTask(id=f"wqrm-{item.get('id') or inst.get('id')}", prompt=prompt,
                       constraints=constraints, reference=best_ranked_draft(item),
                       source="wqrm", **extra)


def read_wqrm(root: Path, report: ImportReport) -> Iterator[WritingTask]:
    items = load_json_file(source_file(root, WQRM_FILE, report), list)
    no_reference = 0
    for _, task in parsed_items(report, enumerate(items, start=1), wqrm_task):
        no_reference += task.reference is None
        yield task
    report.notes["tasks_without_reference"] = no_reference  # the annotators' ranking tied


# --- WritingBench -----------------------------------------------------------------------------

def is_chinese(text: str) -> bool:
    """True when CJK ideographs make up at least a fifth of the query's first 300 characters.

    Only the opening counts: the instruction comes first, and long pasted material after it
    (tables, figures, English sources) should not decide the language.
    """
    head = re.sub(r"\s", "", text)[:300]
    return bool(head) and len(_CJK.findall(head)) / len(head) >= 0.2


def writingbench_criteria(item: dict) -> list[dict] | str:
    """A WritingBench item's rubric (``criteria``, or ``checklist`` in the length subset) as our
    ``criteria``: ``[{"name", "description"}]``, or why it cannot be one.

    >>> writingbench_criteria({"checklist": [{"name": "Flow", "criteria_description": "Reads on.",
    ...                                        "1-2": "Halts."}]})
    [{'name': 'Flow', 'description': 'Reads on.'}]
    """
    rubric = item.get("criteria", item.get("checklist"))
    if not isinstance(rubric, list) or not rubric:
        return "no rubric ('criteria' or 'checklist' list)"
    out = []
    for c in rubric:
        name = c.get("name") if isinstance(c, dict) else None
        text = c.get("criteria_description") if isinstance(c, dict) else None
        if not isinstance(name, str) or not name.strip() or not isinstance(text, str) or not text.strip():
            return "a criterion without a name or criteria_description"
        out.append({"name": name.strip(), "description": text.strip()})
    return out


def writingbench_task(item: Any) -> WritingTask | str:
    """A WritingBench length-subset query as a task with a word range and its rubric as
    ``criteria``, or why it cannot be one."""
    if not isinstance(item, dict) or not isinstance(item.get("query"), str):
        return "no 'query' string"
    query = item["query"]
    criteria = writingbench_criteria(item)
    if isinstance(criteria, str):
        return criteria
    if is_chinese(query):
        return "Chinese query (length stated in characters)"
    found = parse_word_requirement(query)
    if found is None:
        return "no word-count requirement on the whole response"
    if (found.min_words or 0) > MAX_RESPONSE_WORDS:
        return f"stated length over {MAX_RESPONSE_WORDS} words"
    extra = {k: item[k] for k in ("domain1", "domain2") if k in item}
    return WritingTask(id=f"writingbench-length-{item.get('index')}", prompt=query,
                       constraints=[{"id": "creative:word_range", "kwargs": found.kwargs()}],
                       criteria=criteria, source="writingbench-length",
                       length_statement=found.text, **extra)


def read_writingbench_length(root: Path, report: ImportReport) -> Iterator[WritingTask]:
    numbered = json_lines(source_file(root, WRITINGBENCH_LENGTH_FILE, report))
    for _, task in parsed_items(report, numbered, writingbench_task):
        yield task


def writingbench_rubric_task(subset: str):
    """A ``parse`` for :func:`~.importers.parsed_items`: a WritingBench query of ``subset`` as a
    task with its rubric as ``criteria`` and no constraints, or why it cannot be one."""

    def parse(item: Any) -> WritingTask | str:
        if not isinstance(item, dict) or not isinstance(item.get("query"), str) or not item["query"].strip():
            return "no 'query' string"
        criteria = writingbench_criteria(item)
        if isinstance(criteria, str):
            return criteria
        extra = {k: item[k] for k in ("domain1", "domain2") if k in item}
        return WritingTask(id=f"writingbench-{subset}-{item.get('index')}", prompt=item["query"],
                           criteria=criteria, source=f"writingbench-{subset}",
                           language="zh" if is_chinese(item["query"]) else "en", **extra)

    return parse


def _read_writingbench(subset: str):
    def read(root: Path, report: ImportReport) -> Iterator[WritingTask]:
        numbered = json_lines(source_file(root, WRITINGBENCH_FILE.format(subset=subset), report))
        for _, task in parsed_items(report, numbered, writingbench_rubric_task(subset)):
            yield task

    return read


# --- EQ-Bench ---------------------------------------------------------------------------------

def read_eqbench(root: Path, report: ImportReport) -> Iterator[WritingTask]:
    """One task per (prompt, seed modifier); ``read`` counts seed modifiers, the would-be tasks.

    Prompt 3 lists one modifier twice; the repeat would be the same task twice, so it is
    skipped and counted. Ids keep the modifier's position in the source list, so they stay
    stable whatever is skipped.
    """
    prompts = load_json_file(source_file(root, EQBENCH_FILE, report), dict)
    report.notes["source_prompts"] = len(prompts)
    for key, item in prompts.items():
        seeds = item.get("seed_modifiers") if isinstance(item, dict) else None
        template = item.get("writing_prompt") if isinstance(item, dict) else None
        if not isinstance(template, str) or "<SEED>" not in template or not seeds:
            report.read += 1
            report.skip("no writing_prompt with a <SEED> slot and seed modifiers")
            continue
        extra = {k: item[k] for k in ("category", "title") if k in item}
        seen = set()
        for number, seed in enumerate(seeds, start=1):
            report.read += 1
            if not isinstance(seed, str) or not seed.strip():
                report.skip("empty seed modifier")
                continue
            if seed.strip() in seen:
                report.skip("repeated seed modifier", f"prompt {key}: {seed.strip()}")
                continue
            seen.add(seed.strip())
            yield WritingTask(id=f"eqbench-{key}-{number:02d}",
                              prompt=template.replace("<SEED>", seed.strip()),
                              source="eqbench", prompt_key=str(key), **extra)


register(Importer("ifeval", "tasks", _raw_tasks(IFEVAL_FILE, "ifeval"),
                  "IFEval prompts with their instruction constraints"))
register(Importer("ifbench", "tasks", _raw_tasks(IFBENCH_FILE, "ifbench"),
                  "IFBench prompts with out-of-domain constraints"))
register(Importer("wqrm", "tasks", read_wqrm,
                  "WQRM writing instructions (voice, word count) with human-ranked drafts"))
register(Importer("writingbench-length", "tasks", read_writingbench_length,
                  "WritingBench length-subset queries with their stated word range and rubric"))
register(Importer("writingbench-format", "tasks", _read_writingbench("format"),
                  "WritingBench format-subset queries with their rubric as criteria"))
register(Importer("writingbench-style", "tasks", _read_writingbench("style"),
                  "WritingBench style-subset queries with their rubric as criteria"))
register(Importer("eqbench", "tasks", read_eqbench,
                  "EQ-Bench creative-writing prompts, one per seed modifier",
                  group_of=lambda task: task.prompt_key))
