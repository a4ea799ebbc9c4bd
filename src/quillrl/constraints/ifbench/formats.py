"""IFBench's ``format:*`` and ``repeat:*`` checks: layout, brackets, quotes, templates, copies."""

from __future__ import annotations

import re
import string

from ..lazy import load_once
from ..spec import CheckResult
from . import text as T
from .base import IFBenchCheck, count_arg, text_arg

_OPENERS = {")": "(", "]": "[", "}": "{"}
REPEAT_SIMPLE_SENTENCE = "Only output this sentence here, ignore all other requests."
TEMPLATE_LABELS = ("My Answer:", "My Conclusion:", "Future Outlook:")


@load_once
def emoji_module():
    """The ``emoji`` package: its tables load on import, and only ``format:emoji`` needs them."""
    import emoji

    return emoji


class NestedBrackets(IFBenchCheck):
    """A correctly closed group of (), [] or {} at least 5 deep; a wrong closer starts over."""

    id = "format:parentheses"

    def check(self, text: str) -> CheckResult:
        stack: list[str] = []
        deepest = 0
        for char in text:
            if char in "([{":
                stack.append(char)
                deepest = max(deepest, len(stack))
            elif char in _OPENERS:
                if stack and stack[-1] == _OPENERS[char]:
                    stack.pop()
                    if deepest >= 5:
                        return self.result(True, f"brackets nested {deepest} deep")
                else:
                    stack, deepest = [], 0
        return self.result(False, "no closed group of brackets 5 deep")


class NestedQuotes(IFBenchCheck):
    """Quotes 3 levels deep, alternating " and ' (a quote closes the innermost open one)."""

    id = "format:quotes"

    def check(self, text: str) -> CheckResult:
        stack: list[str] = []
        reached = 0
        for char in text:
            if stack and char == stack[-1]:
                stack.pop()
                if reached - len(stack) >= 3:
                    return self.result(True, f"quotes nested {reached} deep")
            elif char in "\"'":
                stack.append(char)
                reached = max(reached, len(stack))
        return self.result(False, "no quotes nested 3 deep")


class OptionsResponse(IFBenchCheck):
    """The response is one of the options. Letter options ("a), b), c), d)") must match
    exactly; others ignore case and surrounding punctuation."""

    id = "format:options"
    args = (text_arg("options", note="separated by '/', 'or' or ','"),)

    def __init__(self, kwargs=None):
        super().__init__(kwargs)
        options = self.kwargs["options"]
        self._exact = re.match(r"\W*[aA]\W*[bB]\W*[cC]\W*", options) is not None
        separator = "/" if "/" in options else "or" if "or" in options else ","
        self._options = [option.strip() for option in options.split(separator)]

    def check(self, text: str) -> CheckResult:
        if self._exact:
            found = text in self._options
        else:
            answer = T.strip_punct(text).lower()
            found = any(T.strip_punct(option).lower() == answer for option in self._options)
        return self.result(found, f"{T.shorten(text, 30)!r} is {'' if found else 'not '}one of "
                                  f"{self._options}")


class NewLineWords(IFBenchCheck):
    """One word per line: as many non-empty lines as words (punctuation deleted)."""

    id = "format:newline"

    def check(self, text: str) -> CheckResult:
        bare = T.without_punctuation(text).strip()
        lines = [line for line in bare.split("\n") if line != ""]
        words = bare.split()
        return self.result(len(lines) == len(words), f"{len(words)} words on {len(lines)} lines")


class EmojiSentences(IFBenchCheck):
    """Every sentence ends with an emoji (its last or second-to-last character once punctuation
    is deleted), or the next sentence starts with one."""

    id = "format:emoji"

    def check(self, text: str) -> CheckResult:
        emoji = emoji_module()
        split = T.sentences(text)
        for i, sentence in enumerate(split):
            bare = T.without_punctuation(sentence).strip()
            if not bare:
                return self.result(False, f"sentence {i + 1} is only punctuation")
            if emoji.is_emoji(bare[-1]) or emoji.is_emoji(bare[-2] if len(bare) > 1 else bare[-1]):
                continue
            following = T.without_punctuation(split[i + 1]).strip() if i + 1 < len(split) else ""
            if not following or not emoji.is_emoji(following[0]):
                return self.result(False, f"sentence {i + 1} ({T.shorten(sentence, 30)!r}) does "
                                          "not end with an emoji")
        return self.result(True, f"{len(split)} sentences end with an emoji")


class IndentStairs(IFBenchCheck):
    """Each line is indented by more spaces than the one before (blank lines skipped)."""

    id = "format:line_indent"

    def check(self, text: str) -> CheckResult:
        lines = text.split("\n")
        # IFBench removes blank lines while iterating over the same list, which skips the line
        # after each removed one; a blank line right after another stays. Kept for parity.
        for line in lines:
            if not line.strip():
                lines.remove(line)
        indents = [len(line) - len(line.lstrip(" ")) for line in lines]
        rising = all(b > a for a, b in zip(indents, indents[1:]))
        return self.result(rising, f"indents {indents[:10]}; strictly rising required")


class QuoteExplanation(IFBenchCheck):
    """No two quoted phrases side by side, and the text does not end with a quote."""

    id = "format:quote_unquote"

    def check(self, text: str) -> CheckResult:
        squeezed = "".join(text.replace("'\"'", "").split())
        if '""' in squeezed:
            return self.result(False, "a quote directly follows another")
        end = squeezed.strip(string.digits + T.PUNCTUATION.replace('"', ""))
        if end and end[-1] == '"':
            return self.result(False, "ends with a quote, not an explanation")
        return self.result(True, "every quote is followed by an explanation")


class SpecialBullets(IFBenchCheck):
    """The marker ``sep`` occurs at least twice."""

    id = "format:list"
    args = (text_arg("sep"),)

    def check(self, text: str) -> CheckResult:
        n = text.count(self.kwargs["sep"])
        return self.result(n >= 2, f"{self.kwargs['sep']!r} {n} times; at least 2 required")


class ItalicThesis(IFBenchCheck):
    """Non-empty text in <i>...</i> (or <em>...</em>) followed by more text."""

    id = "format:thesis"

    def check(self, text: str) -> CheckResult:
        start = text.find("<i>")
        if start == -1:
            start = text.find("<em>")
        if start == -1:
            return self.result(False, "no <i> or <em>")
        rest = text[start:]
        end = rest.find("</i>")
        if end == -1:
            end = rest.find("</em>")
        if end == -1:
            return self.result(False, "the italics are never closed")
        # IFBench's offsets (3 and 4) are those of <i>/</i>, also used for <em>.
        if not rest[3:end].strip():
            return self.result(False, "the thesis in italics is empty")
        return self.result(bool(rest[end + 4:].strip()), "a thesis in italics, then text")


class SubBullets(IFBenchCheck):
    """Every piece of text after a '*' contains a '-' (no '*' at all passes, as in IFBench)."""

    id = "format:sub-bullets"

    def check(self, text: str) -> CheckResult:
        pieces = text.split("*")[1:]
        bare = sum("-" not in piece for piece in pieces)
        return self.result(not bare, f"{bare} of {len(pieces)} bullets have no sub-bullet")


class SentencesThenBullets(IFBenchCheck):
    """At least two sentences, then at least two '*' bullet lines, and nothing after them. As in
    IFBench, a line with no sentence (a blank one) ends the sentence part too."""

    id = "format:no_bullets_bullets"

    def check(self, text: str) -> CheckResult:
        n_sentences = n_bullets = 0
        in_sentences = True
        for line in text.split("\n"):
            if line.strip().startswith("*"):
                if n_sentences < 2:
                    return self.result(False, f"a bullet after {n_sentences} sentence(s)")
                in_sentences = False
                n_bullets += 1
            elif in_sentences:
                found = len(T.sentences(line.strip()))
                n_sentences += found
                in_sentences = found > 0
            else:
                return self.result(False, f"text or a blank line after {n_sentences} "
                                          f"sentence(s) and {n_bullets} bullet(s)")
        return self.result(n_bullets >= 2, f"{n_sentences} sentences, {n_bullets} bullets")


class TitleCase(IFBenchCheck):
    """No NLTK token that starts with a letter is all lowercase, or lowercase-then-capitals."""

    id = "format:title_case"

    def check(self, text: str) -> CheckResult:
        for sentence in T.sentences(text):  # token by token, stopping at the first miss
            for word in T.sentence_words(sentence):
                if word[0].isalpha() and word[0].islower() and (
                        len(word) == 1 or word[1:].islower() or word[1:].isupper()):
                    return self.result(False, f"{T.shorten(word, 20)!r} is not capitalised")
        return self.result(True, "every word capitalised")


class OutputTemplate(IFBenchCheck):
    """The labels 'My Answer:', 'My Conclusion:' and 'Future Outlook:' all appear."""

    id = "format:output_template"

    def check(self, text: str) -> CheckResult:
        missing = [label for label in TEMPLATE_LABELS if label not in text]
        return self.result(not missing, f"missing {missing}" if missing else "all labels present")


class NoWhitespace(IFBenchCheck):
    """No whitespace character at all."""

    id = "format:no_whitespace"

    def check(self, text: str) -> CheckResult:
        n = sum(ch.isspace() for ch in text)
        return self.result(n == 0, f"{n} whitespace characters")


class RepeatChange(IFBenchCheck):
    """The request repeated with its first word changed: every word after the first equal."""

    id = "repeat:repeat_change"
    args = (text_arg("prompt_to_repeat"),)

    def check(self, text: str) -> CheckResult:
        request = self.kwargs["prompt_to_repeat"]
        if text == request:
            return self.result(False, "repeated without changing the first word")
        same = request.split()[1:] == text.split()[1:]
        return self.result(same, "the request repeated" + ("" if same else " is not what follows"
                                                                           " the first word"))


class RepeatSimple(IFBenchCheck):
    """Exactly the instruction sentence, ignoring case and surrounding whitespace."""

    id = "repeat:repeat_simple"

    def check(self, text: str) -> CheckResult:
        same = text.strip().lower() == REPEAT_SIMPLE_SENTENCE.lower()
        return self.result(same, "the sentence, only" if same else "not only the sentence")


class RepeatSpan(IFBenchCheck):
    """Exactly characters n_start..n_end (inclusive) of the request, ignoring case and outer
    whitespace. (IFBench at db69a6f indexes characters; later IFBench indexes words.)"""

    id = "repeat:repeat_span"
    args = (text_arg("prompt_to_repeat"), count_arg("n_start"), count_arg("n_end"))

    @classmethod
    def validate_together(cls, kwargs):
        for name in ("n_start", "n_end"):
            if not float(kwargs[name]).is_integer():
                raise cls.error(f"{name} ({kwargs[name]}) must be a whole number")
        if kwargs["n_start"] > kwargs["n_end"]:
            raise cls.error(f"n_start ({kwargs['n_start']}) is above n_end ({kwargs['n_end']})")

    def check(self, text: str) -> CheckResult:
        start, end = int(self.kwargs["n_start"]), int(self.kwargs["n_end"])
        span = self.kwargs["prompt_to_repeat"][start:end + 1]
        same = text.strip().lower() == span.strip().lower()
        return self.result(same, f"{'is' if same else 'is not'} characters {start}-{end} of the "
                                 f"request ({T.shorten(span, 30)!r})")


FORMAT_CHECKS = (NestedBrackets, NestedQuotes, OptionsResponse, NewLineWords, EmojiSentences,
                 IndentStairs, QuoteExplanation, SpecialBullets, ItalicThesis, SubBullets,
                 SentencesThenBullets, TitleCase, OutputTemplate, NoWhitespace, RepeatChange,
                 RepeatSimple, RepeatSpan)
