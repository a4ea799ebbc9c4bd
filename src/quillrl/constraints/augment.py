"""Attach verifiable constraints to creative prompts (``quillrl data augment-constraints``).

RLMR trains on writing prompts that carry explicit, checkable instructions. For each prompt we
draw 1–``max_per_task`` constraints from :data:`TEMPLATES`, append their natural-language
instructions to the prompt, and attach the matching constraint specs, so the text the policy
reads and the rules the verifier checks come from one place and cannot drift apart.

Draws are diverse (a type is never drawn twice for one prompt) and compatible: constraints in
the same :data:`CONFLICTS` group (e.g. two shapes of the text, two rules about its ending) are
never combined. Every drawn spec is validated by building a :class:`~quillrl.constraints.Constraint`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Callable

from .spec import Constraint

# Evocative words for include/forbid rules; forbidden words are ones a story would reach for.
INCLUDE_WORDS = ("lantern", "harbor", "whisper", "copper", "orchard", "glacier", "ember", "compass",
                 "velvet", "thunder", "meadow", "mirror", "violin", "salt", "feather", "clockwork")
FORBID_WORDS = ("suddenly", "very", "really", "just", "dark", "heart", "smile", "eyes", "love", "night")
ACROSTIC_WORDS = ("RAIN", "STORM", "HOPE", "LIGHT", "RIVER", "DREAM", "STONE", "EMBER")
ENDINGS = ("And that was the last time.", "Nothing was ever the same.", "The end.",
           "It was enough.", "Then the lights went out.")


@dataclass(frozen=True)
class Template:
    """One constraint type: how to draw its kwargs and how to say it to the writer."""

    id: str
    draw: Callable[[random.Random], dict]
    say: Callable[[dict], str]
    group: str | None = None  # constraints sharing a group are never combined


def _word_range(rng: random.Random) -> dict:
    low = rng.choice([50, 80, 100, 150])
    return {"min_words": low, "max_words": low + rng.choice([100, 150, 200])}


def _words(rng: random.Random, pool: tuple[str, ...]) -> list[str]:
    return rng.sample(pool, rng.choice([1, 2]))


def _quote(words: list[str]) -> str:
    quoted = [f'"{w}"' for w in words]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f" and {quoted[-1]}"


TEMPLATES: tuple[Template, ...] = (
    Template("creative:word_range", _word_range,
             lambda k: f"Write between {k['min_words']} and {k['max_words']} words.", "length"),
    Template("creative:point_of_view", lambda r: {"person": r.choice(["first", "second", "third"])},
             lambda k: f"Tell it in the {k['person']} person."),
    Template("creative:include_words", lambda r: {"words": _words(r, INCLUDE_WORDS)},
             lambda k: f"Use the word{'s' if len(k['words']) > 1 else ''} {_quote(k['words'])}."),
    Template("creative:forbid_words", lambda r: {"words": _words(r, FORBID_WORDS)},
             lambda k: f"Do not use the word{'s' if len(k['words']) > 1 else ''} {_quote(k['words'])}."),
    Template("creative:ends_with", lambda r: {"text": r.choice(ENDINGS)},
             lambda k: f'End with the exact sentence "{k["text"]}"', "ending"),
    Template("creative:no_dialogue", lambda r: {}, lambda k: "Include no dialogue: no quoted speech."),
    Template("creative:stanza_count", lambda r: {"num_stanzas": r.choice([2, 3, 4])},
             lambda k: f"Write it as a poem of exactly {k['num_stanzas']} stanzas separated by blank lines.",
             "shape"),
    Template("creative:line_count", lambda r: {"min_lines": 4, "max_lines": r.choice([8, 10, 12])},
             lambda k: f"Use between {k['min_lines']} and {k['max_lines']} lines.", "shape"),
    Template("creative:syllable_pattern", lambda r: {"pattern": [5, 7, 5]},
             lambda k: "Write it as a haiku: three lines of 5, 7 and 5 syllables.", "shape"),
    Template("creative:acrostic", lambda r: {"word": r.choice(ACROSTIC_WORDS)},
             lambda k: f"Make it an acrostic: the first letters of the lines spell {k['word']}.", "shape"),
    Template("punctuation:no_comma", lambda r: {}, lambda k: "Do not use any commas."),
    Template("change_case:english_lowercase", lambda r: {},
             lambda k: "Write everything in lowercase letters; no capital letters at all."),
    Template("detectable_format:title", lambda r: {},
             lambda k: "Give it a title wrapped in double angular brackets, such as <<title>>.", "title"),
    Template("detectable_content:postscript", lambda r: {"postscript_marker": "P.S."},
             lambda k: "At the end, add a postscript starting with P.S.", "ending"),
)
BY_ID = {t.id: t for t in TEMPLATES}

# Pairs of groups that make no sense together: a haiku of 100 words; a title line or a closing
# sentence or postscript added to a line-exact shape (acrostic, haiku, line or stanza count).
# Two members of one group (two endings, two shapes) are never combined either.
CONFLICTS = {frozenset({"shape", "length"}), frozenset({"shape", "title"}), frozenset({"shape", "ending"})}

_WP_TAG = re.compile(r"^\s*\[\s*[A-Za-z]{2,3}\s*\]\s*")


def clean_prompt(prompt: str) -> str:
    """Strip r/WritingPrompts tags such as ``[WP]`` and surrounding whitespace."""
    return _WP_TAG.sub("", prompt).strip()


def _compatible(chosen: list[Template], candidate: Template) -> bool:
    for t in chosen:
        if t.id == candidate.id:
            return False
        if t.group and candidate.group:
            if t.group == candidate.group or frozenset({t.group, candidate.group}) in CONFLICTS:
                return False
    return True


def draw_constraints(rng: random.Random, max_per_task: int = 3,
                     allowed: tuple[str, ...] | None = None) -> list[tuple[Template, dict]]:
    """1..max_per_task compatible constraints with their kwargs."""
    pool = [t for t in TEMPLATES if allowed is None or t.id in allowed]
    want = rng.randint(1, max(1, max_per_task))
    chosen: list[Template] = []
    for t in rng.sample(pool, len(pool)):
        if len(chosen) == want:
            break
        if _compatible(chosen, t):
            chosen.append(t)
    return [(t, t.draw(rng)) for t in chosen]


def augment_prompt(prompt: str, rng: random.Random, max_per_task: int = 3,
                   allowed: tuple[str, ...] | None = None) -> tuple[str, list[Constraint]]:
    """The prompt with its instructions appended, and the validated constraints.

    >>> text, cons = augment_prompt("[WP] A dragon opens a bakery.", random.Random(0), 2)
    >>> text.startswith("A dragon opens a bakery.") and 1 <= len(cons) <= 2
    True
    """
    drawn = draw_constraints(rng, max_per_task, allowed)
    constraints = [Constraint(id=t.id, kwargs=kwargs) for t, kwargs in drawn]
    instructions = " ".join(t.say(kwargs) for t, kwargs in drawn)
    return f"{clean_prompt(prompt)}\n\n{instructions}", constraints
