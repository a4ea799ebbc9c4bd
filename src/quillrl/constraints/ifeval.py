"""The 25 IFEval instructions, checked by lm-eval's own reference classes (lm_eval 0.4.13).

We do not write these checks again: ``IFEvalCheck`` builds lm-eval's checker exactly as
``lm_eval.tasks.ifeval.utils.test_instruction_following_strict`` does (kwargs with falsy values
dropped, then ``build_description(**kwargs)``, then ``build_description(prompt=...)`` when the
checker's args include ``prompt``) and asks it ``check_following``. What we add is in front of
it, where lm-eval is silent:

- kwargs are validated when the constraint is built, against the table below (a test keeps it
  equal to lm-eval's ``get_instruction_args_keys``). Every arg is required: lm-eval fills a
  missing one with a *random* value, which would make the verdict a coin toss.
- IFEval's own data gives ``letter: "#"`` and ``"!"`` (keys 1122, 1129), which lm-eval silently
  replaces with a random ASCII letter. We accept such values, since the official data must load,
  but draw the replacement from a generator seeded by the constraint, so the verdict is the same
  on every run, and we say so in the reason.
- langdetect (``language:response_language``) samples at random unless seeded; we seed it (0)
  so a response gets the same verdict every time it is checked.

lm-eval is imported on the first check (it costs ~2 s), after ``ensure_punkt()``, together with
everything it loads lazily (langdetect's profiles, NLTK's sentence splitter), once and under
``lazy.LOCK``, so checks started from many threads at once see it loaded (docs/design.md,
"Reliability"). A check that reads the prompt builds its own lm-eval checker per call: a shared
one would hold another thread's prompt.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping
from typing import Any

from .base import Arg, Check
from .lazy import LOCK, load_once
from .spec import CheckResult

log = logging.getLogger(__name__)

RELATIONS = ("less than", "at least")
# lm_eval.tasks.ifeval.instructions_util.LANGUAGE_CODES, copied so validation needs no lm-eval
# import; tests/test_verify_registry.py fails if the two ever differ.
LANGUAGES = ("en", "es", "pt", "ar", "hi", "fr", "ru", "de", "ja", "it", "bn", "uk", "th", "ur",
             "ta", "te", "bg", "ko", "pl", "he", "fa", "vi", "ne", "sw", "kn", "mr", "gu", "pa",
             "ml", "fi")

_FALSY = "IFEval drops falsy kwargs, so 0 or '' would be drawn at random"


def _count(name: str) -> Arg:
    return Arg(name, "int", minimum=1, note=_FALSY)


def _relation(name: str = "relation") -> Arg:
    return Arg(name, "str", choices=RELATIONS)


# id -> the kwargs lm-eval's checker takes (names as in get_instruction_args_keys()).
IFEVAL_ARGS: dict[str, tuple[Arg, ...]] = {
    "keywords:existence": (Arg("keywords", "str list", note="regular expressions"),),
    "keywords:frequency": (Arg("keyword", "str", note="a regular expression"),
                           _count("frequency"), _relation()),
    "keywords:forbidden_words": (Arg("forbidden_words", "str list", note="regular expressions"),),
    "keywords:letter_frequency": (
        Arg("letter", "str", note="one ASCII letter; lm-eval replaces anything else by a "
                                  "random letter, which we seed"),
        _count("let_frequency"), _relation("let_relation")),
    "language:response_language": (Arg("language", "str", choices=LANGUAGES),),
    "length_constraints:number_sentences": (_count("num_sentences"), _relation()),
    "length_constraints:number_paragraphs": (_count("num_paragraphs"),),
    "length_constraints:number_words": (_count("num_words"), _relation()),
    "length_constraints:nth_paragraph_first_word": (
        _count("num_paragraphs"), _count("nth_paragraph"), Arg("first_word", "str")),
    "detectable_content:number_placeholders": (_count("num_placeholders"),),
    "detectable_content:postscript": (Arg("postscript_marker", "str"),),
    "detectable_format:number_bullet_lists": (_count("num_bullets"),),
    "detectable_format:constrained_response": (),
    "detectable_format:number_highlighted_sections": (_count("num_highlights"),),
    "detectable_format:multiple_sections": (Arg("section_spliter", "str"), _count("num_sections")),
    "detectable_format:json_format": (),
    "detectable_format:title": (),
    "combination:two_responses": (),
    "combination:repeat_prompt": (Arg("prompt_to_repeat", "str"),),
    "startend:end_checker": (Arg("end_phrase", "str"),),
    "change_case:capital_word_frequency": (_count("capital_frequency"),
                                           _relation("capital_relation")),
    "change_case:english_capital": (),
    "change_case:english_lowercase": (),
    "punctuation:no_comma": (),
    "startend:quotation": (),
}

# kwargs that lm-eval's checkers use as regular expressions (re.search(keyword, ...)).
_REGEX_ARGS = ("keywords", "keyword", "forbidden_words")


@load_once
def lm_eval_registry() -> Mapping[str, type]:
    """lm-eval's ``INSTRUCTION_DICT``, imported once, with punkt data in place, langdetect
    seeded and its profiles loaded, and NLTK's splitters loaded (see the module docstring)."""
    from .punkt_data import ensure_punkt

    ensure_punkt()  # before the import: instructions_util downloads punkt_tab when it is missing
    import langdetect
    from langdetect import detector_factory

    if langdetect.DetectorFactory.seed is None:
        langdetect.DetectorFactory.seed = 0
    # langdetect sets its factory before it reads the profiles: a thread calling detect() in
    # between gets "Need to load profiles". Loaded here, under the lock, before any check runs.
    detector_factory.init_factory()
    from lm_eval.tasks.ifeval import instructions_registry, instructions_util

    instructions_util.count_sentences("One. Two.")  # lru_cached Punkt load
    instructions_util.nltk.word_tokenize("One two.")
    return instructions_registry.INSTRUCTION_DICT


class IFEvalCheck(Check):
    """One IFEval instruction; subclasses (one per id, in ``IFEVAL_CHECKS``) set ``id``/``args``."""

    family = "ifeval"

    @classmethod
    def validate(cls, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(kwargs, Mapping):
            for arg in cls.args:
                value = kwargs.get(arg.name)
                if value is not None and not value:
                    raise cls.error(f"kwarg {arg.name!r} is {value!r}, and {_FALSY}")
            # As test_instruction_following_strict does: only truthy values reach lm-eval.
            kwargs = {k: v for k, v in kwargs.items() if v}
        return super().validate(kwargs)

    @classmethod
    def validate_together(cls, kwargs: dict[str, Any]) -> None:
        if kwargs.get("nth_paragraph", 0) > kwargs.get("num_paragraphs", 0):
            raise cls.error(f"nth_paragraph ({kwargs['nth_paragraph']}) is above num_paragraphs "
                            f"({kwargs['num_paragraphs']})")
        for name in _REGEX_ARGS:
            values = kwargs.get(name, [])
            for pattern in [values] if isinstance(values, str) else values:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise cls.error(f"{name} {pattern!r} is not a valid regular expression "
                                    f"({exc}); lm-eval searches it as one") from None

    def __init__(self, kwargs: Mapping[str, Any] | None = None) -> None:
        super().__init__(kwargs)
        self._checker: Any = None
        self.description = ""
        self.substituted = ""  # what lm-eval drew at random in place of a given value, if anything
        # Any random draw lm-eval makes while building comes from this seed (see module doc).
        self.random_seed = f"{self.id}|{sorted(self.kwargs.items())!r}"
        self.needs_prompt = False
        self._drew = False

    def _build(self) -> Any:
        checker = self._new_checker()
        used = checker.get_instruction_args() or {}
        if self._drew:
            self.substituted = ", ".join(f"{k} {self.kwargs.get(k)!r} -> {v!r}"
                                         for k, v in used.items()
                                         if str(v) != str(self.kwargs.get(k)))
        self.needs_prompt = "prompt" in used
        return checker

    def _new_checker(self) -> Any:
        checker = lm_eval_registry()[self.id](self.id)
        self.description, self._drew = self._seeded(
            lambda: checker.build_description(**self.kwargs))
        return checker

    def _seeded(self, build):
        """Run ``build`` with Python's global generator seeded by this constraint, then put the
        caller's generator state back; also report whether ``build`` drew from it.

        lm-eval draws from the module-level ``random``, so this is the only way to fix its draw.
        Under ``LOCK``, so two checks building at once do not draw from each other's seed.
        (Another thread drawing from ``random`` at this instant would see the seeded state.)"""
        with LOCK:
            return self._seeded_unlocked(build)

    def _seeded_unlocked(self, build):
        saved = random.getstate()
        random.seed(self.random_seed)
        try:
            value = build()
            # Had build drawn nothing, the next number would be a fresh generator's first one
            # (cheaper than comparing two 625-word states).
            drew = random.random() != random.Random(self.random_seed).random()
            return value, drew
        finally:
            random.setstate(saved)

    def check(self, text: str, prompt: str | None = None) -> CheckResult:
        if self._checker is None:
            with LOCK:  # one build per check, even when many threads call it first at once
                if self._checker is None:
                    self._checker = self._build()
        checker = self._checker
        if self.needs_prompt:
            if prompt is None:
                return CheckResult(None, f"{self.id} needs the task prompt; none was given")
            # A checker of this call's own: this constraint is shared between threads (and
            # tasks), and the shared checker would be holding whichever prompt came last.
            checker = self._new_checker()
            self._seeded(lambda: checker.build_description(prompt=prompt))
        try:
            passed = bool(checker.check_following(text))
        except Exception as exc:  # lm-eval would crash the whole evaluation; we count a None
            log.warning("%s: lm-eval's checker raised %r", self.id, exc)
            return CheckResult(None, f"check failed in lm-eval: {type(exc).__name__}: {exc}")
        note = f" (lm-eval drew at random, seeded: {self.substituted})" if self.substituted else ""
        return CheckResult(passed, f"{'followed' if passed else 'not followed'}: "
                                   f"{self.description}{note}")


# One class per IFEval id: the registry maps ids to classes, and error messages name the id.
IFEVAL_CHECKS: dict[str, type[IFEvalCheck]] = {
    instruction_id: type(f"IFEval_{instruction_id.replace(':', '_')}", (IFEvalCheck,),
                         {"id": instruction_id, "args": args, "__module__": __name__})
    for instruction_id, args in IFEVAL_ARGS.items()
}
