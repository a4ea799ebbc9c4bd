"""Property: every task augment-constraints makes (with or without constraints of its own) can be
met. For each drawn task we build a response that follows every constraint (``witness``) and
check it with the verifier; a combination no response can meet would fail here, so the
conflict rules in constraints/templates.py are tested, not just stated."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quillrl.constraints import Constraint, verify
from quillrl.constraints.syllables import line_syllables
from quillrl.constraints.templates import (
    CHARACTER_NAMES, DEFAULT_FAMILIES, FAMILIES, augment_prompt, draw_constraints)

SUBJECT = {"first": "I", "second": "you", "third": "she", None: "she"}
FILLER = "the rain fell on the old stone path by the quiet lake".split()
ONE_SYLLABLE = ["rain", "falls", "on", "stone", "cold", "moss", "wind", "old", "path", "lake"]
START_WORD = {"R": "rain", "A": "ash", "I": "ice", "N": "nest", "S": "stone", "T": "tide",
              "O": "owl", "M": "moss", "H": "hill", "P": "path", "E": "elm", "L": "leaf",
              "G": "gold", "V": "vine", "D": "dusk", "B": "bark"}
CONJUNCTIONS = ["and", "but", "or", "so", "yet"]


def _pad_to_syllables(words: list[str], target: int) -> str:
    line = " ".join(words)
    for filler in ONE_SYLLABLE * 3:
        counts = line_syllables(line)
        if target in counts:
            return line
        assert min(counts) < target, f"{line!r} is already over {target} syllables"
        line = f"{line} {filler}".strip()
    raise AssertionError(f"could not pad {words} to {target} syllables")


def _shape_lines(kw: dict, words: list[str]) -> str | None:
    """A text in the drawn shape, holding ``words``; None when no shape was drawn."""
    if "creative:syllable_pattern" in kw:
        pattern = kw["creative:syllable_pattern"]["pattern"]
        parts = [words[:2], words[2:]] + [[]] * (len(pattern) - 2)
        return "\n".join(_pad_to_syllables(p, n) for p, n in zip(parts, pattern))
    if "creative:acrostic" in kw:
        letters = [c for c in kw["creative:acrostic"]["word"].upper() if c.isalpha()]
        lines = [" ".join([START_WORD[c]] + (words if i == 0 else FILLER[:3]))
                 for i, c in enumerate(letters)]
        return "\n".join(lines)
    if "creative:stanza_count" in kw:
        n = kw["creative:stanza_count"]["num_stanzas"]
        return "\n\n".join(" ".join((words if i == 0 else []) + FILLER[:6]) for i in range(n))
    if "creative:line_count" in kw:
        n = kw["creative:line_count"]["min_lines"]
        return "\n".join(" ".join((words if i == 0 else []) + FILLER[:6]) for i in range(n))
    return None


def _prose(kw: dict, words: list[str], subject: str) -> str:
    n_sentences = max(3, kw.get("sentence:keyword", {}).get("N", 1))
    sentences = [[subject, "walked", "down"] + FILLER[4:] for _ in range(n_sentences)]
    sentences[0] = [subject, "saw"] + words + FILLER[:4]
    if "sentence:keyword" in kw:
        k = kw["sentence:keyword"]
        sentences[int(k["N"]) - 1] = sentences[int(k["N"]) - 1] + ["near", "the", k["word"]]
    if "count:conjunctions" in kw:
        sentences[0] += CONJUNCTIONS[:int(kw["count:conjunctions"]["small_n"])]
    low, _ = _length(kw)
    while sum(len(s) for s in sentences) < low + 5:  # + the title and ending words
        sentences.append(list(FILLER))
    body = " ".join(_capitalised(" ".join(s)) + "." for s in sentences)
    if "detectable_format:title" in kw:
        body = "<<The Path>>\n" + body
    if "creative:ends_with" in kw:
        body += " " + kw["creative:ends_with"]["text"]
    if "detectable_content:postscript" in kw:
        body += "\nP.S. rain again."
    return body


def _capitalised(sentence: str) -> str:
    return sentence[:1].upper() + sentence[1:]  # str.capitalize would lowercase the names


def _length(kw: dict) -> tuple[int, int]:
    for cid in ("creative:word_range", "count:word_count_range"):
        if cid in kw:
            return kw[cid].get("min_words", 0), kw[cid].get("max_words", 10 ** 6)
    if "length_constraints:number_words" in kw:
        return kw["length_constraints:number_words"]["num_words"], 10 ** 6
    return 0, 10 ** 6


def witness(constraints) -> str:
    """A response meant to follow every constraint drawn by the templates."""
    kw = {c.id: c.kwargs for c in constraints}
    person = kw.get("creative:point_of_view", {}).get("person")
    words = list(kw.get("creative:include_words", {}).get("words", []))
    words += list(CHARACTER_NAMES[:int(kw.get("count:person_names", {}).get("N", 0))])
    shaped = _shape_lines(kw, ([SUBJECT[person]] if person in ("first", "second") else []) + words)
    text = shaped if shaped is not None else _prose(kw, words, SUBJECT[person])
    if "change_case:english_lowercase" in kw:
        text = text.lower()
    return text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), max_per_task=st.integers(1, 4),
       own=st.integers(0, 2), everything=st.booleans())
def test_every_augmented_task_has_a_response_that_passes(seed, max_per_task, own, everything):
    families = FAMILIES if everything else DEFAULT_FAMILIES
    rng = random.Random(seed)
    # Each example draws a batch of tasks, so the rarer combinations (a few % of draws) occur.
    for _ in range(40):
        # A task that already carries constraints (drawn the same way, as a task made earlier).
        existing = [Constraint(id=t.id, kwargs=k)
                    for t, k in draw_constraints(rng, own, families=FAMILIES)] if own else []
        prompt, constraints = augment_prompt("A lighthouse keeper finds a letter.", rng,
                                             max_per_task, existing=existing, families=families)
        assert constraints[:len(existing)] == existing  # a task's own constraints come first
        response = witness(constraints)
        result = verify(response, constraints, prompt=prompt)
        failed = [(r.id, r.reason) for r in result.results if not r.passed]
        assert result.passed, (failed, response)
