"""Constraint templates: how to draw a constraint for a creative prompt and how to say it.

RLMR trains on writing prompts that carry explicit, checkable instructions. For each prompt we
draw 1–``max_per_task`` constraints from :data:`TEMPLATES`, append their natural-language
instructions to the prompt, and attach the matching constraint specs, so the text the policy
reads and the rules the verifier checks come from one place and cannot drift apart
(``quillrl data augment-constraints``; the file-level work is in ``constrained_tasks.py``).

Draws are diverse (an id is never drawn twice for one prompt, nor one the task already has) and
compatible: constraints in the same group (two shapes of the text, two rules about its ending,
two lengths) or in groups that :data:`CONFLICTS` pairs are never combined, and the same holds
against the constraints a task already carries (:data:`GROUP_OF` knows the groups of ids that
have no template here, such as IFEval's word count). Every drawn spec is validated by building a
:class:`~quillrl.constraints.Constraint`. Templates come in families (``creative``, ``ifeval``,
``ifbench``); the default draws from the first two, as before IFBench's ids were added.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
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
# A few of IFBench's 50 names (count:person_names accepts only names from its list).
CHARACTER_NAMES = ("Emma", "Liam", "Sophia", "Noah", "Olivia", "Lucas", "Mia", "Ethan", "Nora",
                   "Owen", "Stella", "Gabriel")
SENTENCE_KEYWORDS = ("door", "river", "letter", "storm", "bridge", "garden", "window", "train")
FAMILIES = ("creative", "ifeval", "ifbench")
DEFAULT_FAMILIES = ("creative", "ifeval")


@dataclass(frozen=True)
class Template:
    """One constraint type: how to draw its kwargs and how to say it to the writer."""

    id: str
    draw: Callable[[random.Random], dict]
    say: Callable[[dict], str]
    group: str | None = None  # constraints sharing a group are never combined

    @property
    def family(self) -> str:
        """``creative``, ``ifbench`` or ``ifeval``, from the id."""
        from .ifbench import IFBENCH_CHECKS

        if self.id.startswith("creative:"):
            return "creative"
        return "ifbench" if self.id in IFBENCH_CHECKS else "ifeval"


def _word_range(rng: random.Random) -> dict:
    low = rng.choice([50, 80, 100, 150])
    return {"min_words": low, "max_words": low + rng.choice([100, 150, 200])}


def _words(rng: random.Random, pool: tuple[str, ...]) -> list[str]:
    return rng.sample(pool, rng.choice([1, 2]))


def _ifbench_word_range(rng: random.Random) -> dict:
    low = rng.choice([80, 120, 150])
    return {"min_words": low, "max_words": low + rng.choice([60, 100])}


def _sentence_keyword(rng: random.Random) -> dict:
    return {"word": rng.choice(SENTENCE_KEYWORDS), "N": rng.choice([1, 2, 3])}


_ORDINALS = {1: "first", 2: "second", 3: "third"}


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
             lambda k: "Write everything in lowercase letters; no capital letters at all.", "case"),
    Template("detectable_format:title", lambda r: {},
             lambda k: "Give it a title wrapped in double angular brackets, such as <<title>>.", "title"),
    Template("detectable_content:postscript", lambda r: {"postscript_marker": "P.S."},
             lambda k: "At the end, add a postscript starting with P.S.", "ending"),
    # IFBench ids that suit a story (family "ifbench"); said in our words, checked as IFBench does.
    Template("count:word_count_range", _ifbench_word_range,
             lambda k: f"Keep it between {k['min_words']} and {k['max_words']} words long.",
             "length"),
    Template("count:person_names", lambda r: {"N": r.choice([2, 3])},
             lambda k: f"Give at least {k['N']} of your characters names from this list: "
                       f"{', '.join(CHARACTER_NAMES)}.", "names"),
    Template("count:conjunctions", lambda r: {"small_n": r.choice([3, 4, 5])},
             lambda k: f"Join your clauses with at least {k['small_n']} different conjunctions "
                       "(and, but, or, so, yet, for, nor).", "conjunctions"),
    Template("sentence:keyword", _sentence_keyword,
             lambda k: f"Use the word \"{k['word']}\" in your {_ORDINALS[k['N']]} sentence.",
             "position"),
)
BY_ID = {t.id: t for t in TEMPLATES}

# The group of every id drawn here, and of ids a task may already carry without a template here
# (IFEval's and IFBench's), so that what we add never contradicts what the task asks already.
GROUP_OF: dict[str, str] = {
    **{t.id: t.group for t in TEMPLATES if t.group},
    "length_constraints:number_words": "length",
    "length_constraints:number_paragraphs": "shape",
    "startend:end_checker": "ending",
    "change_case:english_capital": "case",
    "change_case:english_lowercase": "case",
    "format:title_case": "case",
}

# Pairs of groups that cannot hold together: a haiku of 100 words; a title line or a closing
# sentence or postscript added to a line-exact shape (acrostic, haiku, line or stanza count);
# a keyword in the 3rd sentence or five conjunctions in a haiku; character names (capitalised,
# as IFBench matches them) in an all-lowercase text. Names in a shape could often fit, but a
# form's few lines are for the poem, so we keep those apart too (tests/test_augment_feasible.py
# shows every combination we allow can be met).
# Two members of one group (two endings, two shapes, two lengths) are never combined either.
CONFLICTS = {frozenset(pair) for pair in (
    ("shape", "length"), ("shape", "title"), ("shape", "ending"), ("shape", "names"),
    ("shape", "conjunctions"), ("shape", "position"), ("case", "names"))}

_WP_TAG = re.compile(r"^\s*\[\s*[A-Za-z]{2,3}\s*\]\s*")


def clean_prompt(prompt: str) -> str:
    """Strip r/WritingPrompts tags such as ``[WP]`` and surrounding whitespace."""
    return _WP_TAG.sub("", prompt).strip()


def _compatible(chosen: Iterable[tuple[str, str | None]], candidate: Template) -> bool:
    """Whether ``candidate`` may join the ``(id, group)`` pairs already chosen or given."""
    for constraint_id, group in chosen:
        if constraint_id == candidate.id:
            return False
        if group and candidate.group:
            if group == candidate.group or frozenset({group, candidate.group}) in CONFLICTS:
                return False
    return True


def draw_constraints(rng: random.Random, max_per_task: int = 3,
                     allowed: tuple[str, ...] | None = None,
                     existing: Iterable[Constraint] = (),
                     families: tuple[str, ...] = DEFAULT_FAMILIES) -> list[tuple[Template, dict]]:
    """1..max_per_task new constraints, compatible with each other and with ``existing``.

    ``allowed`` (template ids) overrides ``families``. Fewer are drawn when few are compatible.
    """
    pool = [t for t in TEMPLATES
            if (t.id in allowed if allowed is not None else t.family in families)]
    want = rng.randint(1, max(1, max_per_task))
    taken = [(c.id, GROUP_OF.get(c.id)) for c in existing]
    chosen: list[Template] = []
    for t in rng.sample(pool, len(pool)):
        if len(chosen) == want:
            break
        if _compatible(taken + [(c.id, c.group) for c in chosen], t):
            chosen.append(t)
    return [(t, t.draw(rng)) for t in chosen]


def augment_prompt(prompt: str, rng: random.Random, max_per_task: int = 3,
                   allowed: tuple[str, ...] | None = None, existing: Iterable[Constraint] = (),
                   families: tuple[str, ...] = DEFAULT_FAMILIES,
                   ) -> tuple[str, list[Constraint]]:
    """The prompt with the new instructions appended, and every constraint: ``existing`` first
    (the prompt already asks for them), then the new ones, validated.

    >>> text, cons = augment_prompt("[WP] A dragon opens a bakery.", random.Random(0), 2)
    >>> text.startswith("A dragon opens a bakery.") and 1 <= len(cons) <= 2
    True
    """
    existing = list(existing)
    drawn = draw_constraints(rng, max_per_task, allowed, existing, families)
    constraints = existing + [Constraint(id=t.id, kwargs=kwargs) for t, kwargs in drawn]
    text = clean_prompt(prompt)
    if drawn:
        text += "\n\n" + " ".join(t.say(kwargs) for t, kwargs in drawn)
    return text, constraints
