"""Importers of preference pairs: StoryER, the WQ style-mimic set, and LAMP-P.

The two creativity_eval sets list every pair twice, once per paragraph order (a position-bias
control for judges, who see both orders anyway in our swap-debiased evaluation). Both copies
give the same chosen/rejected pair, so we write it once and count the second copy under
"duplicate pair (order swapped)". Neither set carries the writing instruction the paragraphs
answered, so their ``prompt`` is a short one of ours, stated below; the judge compares writing
quality, as the benchmarks' own judging prompt does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .importers import Importer, ImportReport, parsed_items, register, source_file
from .jsonl import json_lines, load_json_file
from .records import PreferencePair

STORYER_FILE = "preferences/storyer/rank_pairs.jsonl"
WQ_FILE = "preferences/creativity_eval/wq_style_mimic.jsonl"
LAMP_P_FILE = "preferences/creativity_eval/lamp-P_test.jsonl"

GENERIC_PROMPT = "Write a paragraph of creative writing."
# StoryER writes a paragraph break as " <\newline> "; a blank line is how plain text and
# Markdown separate paragraphs, and what our stanza/paragraph checks expect.
_STORYER_BREAK = re.compile(r"\s*<\\newline>\s*")


def storyer_text(text: str) -> str:
    r"""StoryER text with its paragraph markers as real paragraph breaks.

    >>> storyer_text("One. <\\newline> Two.")
    'One.\n\nTwo.'
    """
    return _STORYER_BREAK.sub("\n\n", text).strip()


def _with_str_fields(*names: str) -> Callable[[Any], dict | str]:
    """A ``parse`` for :func:`~.importers.parsed_items`: the item itself if it is an object with a
    non-empty string under each of ``names``, else why not (the first such name)."""

    def parse(item: Any) -> dict | str:
        if not isinstance(item, dict):
            return "line is not a JSON object"
        for name in names:
            if not isinstance(item.get(name), str) or not item[name].strip():
                return f"missing or empty '{name}'"
        return item

    return parse


class _Dedupe:
    """Drops a pair seen before (same prompt, chosen, rejected), counting it in the report."""

    def __init__(self, report: ImportReport):
        self.report, self.seen = report, set()

    def new(self, pair: PreferencePair) -> bool:
        key = (pair.prompt, pair.chosen, pair.rejected)
        if key in self.seen:
            self.report.skip("duplicate pair (order swapped)")
            return False
        self.seen.add(key)
        return True


def read_storyer(root: Path, report: ImportReport) -> Iterator[PreferencePair]:
    """StoryER rank pairs: ``high_story`` preferred over ``low_story`` (every ``target`` is 1)."""
    dedupe = _Dedupe(report)
    numbered = json_lines(source_file(root, STORYER_FILE, report))
    for line, item in parsed_items(report, numbered, _with_str_fields("prompt", "high_story", "low_story")):
        if item.get("target", 1) != 1:
            # The README documents high_story as preferred; a line saying otherwise is not
            # something we can interpret, so it is counted rather than guessed at.
            report.skip("target is not 1")
            continue
        extra = {k: v for k, v in item.items()
                 if k not in ("prompt", "high_story", "low_story", "target")}
        pair = PreferencePair(id=f"storyer-{line:04d}", prompt=item["prompt"].strip(),
                              chosen=storyer_text(item["high_story"]),
                              rejected=storyer_text(item["low_story"]),
                              source="storyer", **extra)
        if dedupe.new(pair):
            yield pair


def _load_json_or_jsonl(path: Path) -> list[tuple[int, Any]]:
    """Items of a file that is a JSON array (despite a .jsonl name, as wq_style_mimic is) or JSONL;
    numbered by array position or by line."""
    with path.open("rb") as fh:
        head = fh.read(64).lstrip()
    if head.startswith(b"["):
        return list(enumerate(load_json_file(path, list), start=1))
    return list(json_lines(path))


def read_wq_style_mimic(root: Path, report: ImportReport) -> Iterator[PreferencePair]:
    """WQ style-mimic: ``reference_preference`` "1"/"2" names the better of two paragraphs.

    The paragraphs are an author's original and an imitation; the file names the author in
    ``source``, so the prompt is "Write a paragraph in the style of <author>."
    """
    dedupe = _Dedupe(report)
    numbered = _load_json_or_jsonl(source_file(root, WQ_FILE, report))
    for number, item in parsed_items(report, numbered, _with_str_fields("paragraph1", "paragraph2")):
        label = str(item.get("reference_preference", "")).strip()
        if label not in ("1", "2"):
            report.skip("reference_preference is not '1' or '2'")
            continue
        p1, p2 = item["paragraph1"].strip(), item["paragraph2"].strip()
        chosen, rejected = (p1, p2) if label == "1" else (p2, p1)
        author = str(item.get("source") or "").replace("_", " ").strip()
        prompt = f"Write a paragraph in the style of {author}." if author else GENERIC_PROMPT
        pair_id = f"wq-style-mimic-{item.get('original_id') or number}"
        extra = {"author": author} if author else {}
        pair = PreferencePair(id=pair_id, prompt=prompt, chosen=chosen, rejected=rejected,
                              source="wq-style-mimic", **extra)
        if dedupe.new(pair):
            yield pair


_PARAGRAPHS = re.compile(
    r"Paragraph\s*1\s*:\s*(?P<p1>.*?)\s*Paragraph\s*2\s*:\s*(?P<p2>.*?)\s*"
    r"(?:You must produce your answer|\Z)", re.S | re.I)
_LABEL = re.compile(r"""["']?preference["']?\s*[:=]\s*["']?([12])\b""", re.I)


def parse_lamp_p(item: Any) -> tuple[str, str, str] | str:
    """``(paragraph1, paragraph2, label)`` from a LAMP-P chat line, or the reason it cannot be.

    The user turn holds both paragraphs after "Paragraph 1:"/"Paragraph 2:" and before the
    answer-format instructions; the assistant turn holds ``{"preference": "1"|"2"}``, read as
    JSON and, failing that, with a pattern so a near-JSON answer still counts.

    >>> parse_lamp_p({"messages": [
    ...     {"role": "user", "content": "Paragraph 1:\\nA.\\n\\nParagraph 2:\\nB.\\n"},
    ...     {"role": "assistant", "content": '{"preference": "2"}'}]})
    ('A.', 'B.', '2')
    """
    messages = item.get("messages") if isinstance(item, dict) else None
    if not isinstance(messages, list):
        return "no 'messages' list"
    turns = {m.get("role"): m.get("content") for m in messages if isinstance(m, dict)}
    user, answer = turns.get("user"), turns.get("assistant")
    if not isinstance(user, str) or not isinstance(answer, str):
        return "no user or assistant turn"
    found = _PARAGRAPHS.search(user)
    if not found or not found["p1"].strip() or not found["p2"].strip():
        return "cannot find both paragraphs"
    label = None
    try:
        value = json.loads(answer)
        if isinstance(value, dict):
            label = str(value.get("preference", "")).strip()
    except (json.JSONDecodeError, RecursionError):
        pass
    if label not in ("1", "2"):
        match = _LABEL.search(answer)
        label = match.group(1) if match else None
    if label is None:
        return "cannot read the preference label"
    return found["p1"].strip(), found["p2"].strip(), label


def read_lamp_p(root: Path, report: ImportReport) -> Iterator[PreferencePair]:
    """LAMP-P: pairwise judgments in chat format (system, user with both paragraphs, answer)."""
    dedupe = _Dedupe(report)
    numbered = json_lines(source_file(root, LAMP_P_FILE, report))
    for line, (p1, p2, label) in parsed_items(report, numbered, parse_lamp_p):
        chosen, rejected = (p1, p2) if label == "1" else (p2, p1)
        pair = PreferencePair(id=f"lamp-p-{line:03d}", prompt=GENERIC_PROMPT, chosen=chosen,
                              rejected=rejected, source="lamp-p")
        if dedupe.new(pair):
            yield pair


register(Importer("storyer", "pairs", read_storyer,
                  "StoryER r/WritingPrompts story pairs (human preferences)"))
register(Importer("wq-style-mimic", "pairs", read_wq_style_mimic,
                  "Writing Quality style-mimic paragraph pairs (expert preferences)"))
# Every LAMP-P pair has our one placeholder prompt, so splitting "by prompt" would put them all
# on one side; each pair is its own group instead (no two share a paragraph after de-duplication).
register(Importer("lamp-p", "pairs", read_lamp_p,
                  "LAMP pairwise paragraph preferences (chat format)",
                  group_of=lambda pair: pair.id))
