"""IFBench's ``custom:*`` checks: one fixed task each (a list, a CSV table, a reversal...)."""

from __future__ import annotations

import csv
import io
import re
import unicodedata

from ..spec import CheckResult
from . import text as T
from .base import IFBenchCheck

MULTIPLES_OF_7 = [str(n) for n in range(14, 51, 7)]
# Capitals of European countries north of 45°, by latitude, highest first (IFBench's answer).
NORTHERN_CAPITALS = (
    "Reykjavik", "Helsinki", "Oslo", "Tallinn", "Stockholm", "Riga", "Moscow", "Copenhagen",
    "Vilnius", "Minsk", "Dublin", "Berlin", "Amsterdam", "Warsaw", "London", "Brussels", "Prague",
    "Luxembourg", "Paris", "Vienna", "Bratislava", "Budapest", "Vaduz", "Chisinau", "Bern",
    "Ljubljana", "Zagreb")
CITY_HEADER = ["ID", "Country", "City", "Year", "Count"]
_PRODUCT_HEADER = re.compile(r'^(ProductID|"ProductID"),[ \t]*(Category|"Category"),[ \t]*'
                             r'(Brand|"Brand"),[ \t]*(Price|"Price"),[ \t]*(Stock|"Stock")$')
_STUDENT_HEADER = re.compile(r'^(StudentID|"StudentID")\t *(Subject|"Subject")\t *'
                             r'(Grade|"Grade")\t *(Semester|"Semester")\t *(Score|"Score")$')
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH_DAYS = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30,
               12: 31}


def ascii_fold(text: str) -> str:
    """Accents removed and anything non-ASCII dropped: 'São Tomé' -> 'Sao Tome'."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _csv_rows(text: str, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


class PrintMultiples(IFBenchCheck):
    """The numbers in the response are exactly 14, 21, 28, 35, 42, 49."""

    id = "custom:multiples"

    def check(self, text: str) -> CheckResult:
        numbers = re.findall(r"\d+", text.replace(",", ", "))
        return self.result(numbers == MULTIPLES_OF_7, f"numbers {numbers[:10]}")


class MultipleChoiceQuestions(IFBenchCheck):
    """Starts with 'Question'; 4 questions of 5 options (A-E) each, each question longer."""

    id = "custom:mcq_count_length"

    def check(self, text: str) -> CheckResult:
        if not text.startswith("Question"):
            return self.result(False, "text before the first 'Question'")
        parts = [q.strip() for q in re.split(r"\n*(?:Question \d+[\.|\):;]?\s*)", text)]
        questions = [q for q in parts if q]
        if len(questions) != 4:
            return self.result(False, f"{len(questions)} questions; 4 required")
        lengths = []
        for i, question in enumerate(questions, 1):
            stem, options, in_options = "", 0, False
            for line in question.split("\n"):
                if re.match(r"^[A-Ea-e][\.|\)]\s*\w+", line.strip()):
                    options, in_options = options + 1, True
                elif not in_options:
                    stem += " " + line.strip()
            if options != 5:
                return self.result(False, f"question {i} has {options} options; 5 required")
            lengths.append(len(stem.strip()))
        rising = all(b > a for a, b in zip(lengths, lengths[1:]))
        return self.result(rising, f"question lengths {lengths}; each longer required")


class ReverseAlphabeticalLines(IFBenchCheck):
    """From the line naming Zimbabwe on, at least 52 lines in reverse alphabetical order."""

    id = "custom:reverse_newline"

    def check(self, text: str) -> CheckResult:
        lines = [T.strip_punct(line) for line in text.split("\n") if T.strip_punct(line)]
        start = next((i for i, line in enumerate(lines) if "Zimbabwe" in line), None)
        if start is None:
            return self.result(False, "no line names Zimbabwe")
        listed = [ascii_fold(line) for line in lines[start:]]
        if len(listed) < 52:
            return self.result(False, f"{len(listed)} lines from Zimbabwe on; 52 required")
        ordered = listed == sorted(listed, reverse=True)
        return self.result(ordered, f"{len(listed)} lines, {'' if ordered else 'not '}in reverse "
                                    "alphabetical order")


class WordReverse(IFBenchCheck):
    """Read backwards word by word, the answer contains 'bald eagle' and is one sentence."""

    id = "custom:word_reverse"

    def check(self, text: str) -> CheckResult:
        forward = " ".join(T.without_punctuation(text.lower().strip()).split()[::-1])
        if "bald eagle" not in forward:
            return self.result(False, "reversed, it does not say 'bald eagle'")
        return self.result(forward in T.sentences(forward), f"reversed: {T.shorten(forward)!r}")


class CharacterReverse(IFBenchCheck):
    """Contains 'elgae dlab' ("bald eagle" backwards), any case."""

    id = "custom:character_reverse"

    def check(self, text: str) -> CheckResult:
        found = "elgae dlab" in text.lower()
        return self.result(found, f"'elgae dlab' {'found' if found else 'not found'}")


class SentenceAlphabet(IFBenchCheck):
    """26 sentences whose first letters are a, b, ... z in order."""

    id = "custom:sentence_alphabet"

    def check(self, text: str) -> CheckResult:
        split = T.sentences(text)
        if len(split) != 26:
            return self.result(False, f"{len(split)} sentences; 26 required")
        for i, sentence in enumerate(split):
            words = sentence.split()  # IFBench at db69a6f: a leading quote is the first letter
            if not words or words[0][0].lower() != chr(97 + i):
                return self.result(False, f"sentence {i + 1} does not start with {chr(65 + i)}")
        return self.result(True, "26 sentences from A to Z")


class EuropeanCapitals(IFBenchCheck):
    """Exactly IFBench's 27 capitals, comma-separated, in its order."""

    id = "custom:european_capitals_sort"

    def check(self, text: str) -> CheckResult:
        given = [c.strip() for c in ascii_fold(text).split(",") if c.strip()]
        if len(given) != len(NORTHERN_CAPITALS):
            return self.result(False, f"{len(given)} capitals; {len(NORTHERN_CAPITALS)} required")
        wrong = next((i for i, (a, b) in enumerate(zip(given, NORTHERN_CAPITALS)) if a != b), None)
        if wrong is not None:
            return self.result(False, f"capital {wrong + 1} is {T.shorten(given[wrong], 20)!r}, "
                                      f"expected {NORTHERN_CAPITALS[wrong]!r}")
        return self.result(True, "the capitals in order")


class CityCSV(IFBenchCheck):
    """A CSV table: the header ID,Country,City,Year,Count and 7 rows of 5 fields."""

    id = "custom:csv_city"

    def check(self, text: str) -> CheckResult:
        rows = _csv_rows(text)
        if len(rows) != 8:
            return self.result(False, f"{len(rows)} CSV rows; a header and 7 rows required")
        if rows[0] != CITY_HEADER:
            return self.result(False, f"header {rows[0][:6]}")
        bad = sum(len(row) != 5 for row in rows[1:])
        return self.result(not bad, f"{bad} rows without 5 fields")


class SpecialCharacterCSV(IFBenchCheck):
    """A ProductID,...,Stock CSV with 14 rows of 5 fields, one a quoted field holding a special
    character. As in IFBench, quotes are tripled before parsing, so quoted fields keep them."""

    id = "custom:csv_special_character"

    def check(self, text: str) -> CheckResult:
        if not _PRODUCT_HEADER.match(text.split("\n")[0].strip()):
            return self.result(False, "the header is not ProductID,Category,Brand,Price,Stock")
        rows = _csv_rows(text.replace('"', '"""'))
        if len(rows) != 15:
            return self.result(False, f"{len(rows)} CSV rows; a header and 14 rows required")
        for row in rows[1:]:
            if len(row) != 5:
                return self.result(False, f"a row with {len(row)} fields")
            if any(re.match(r'".*[^\d\w\s].*"', field) for field in row):
                return self.result(True, "a quoted field with a special character")
        return self.result(False, "no quoted field with a special character")


class QuotesCSV(IFBenchCheck):
    """A tab-separated StudentID..Score table of a header and 3 rows, every field in quotes."""

    id = "custom:csv_quotes"

    def check(self, text: str) -> CheckResult:
        if not _STUDENT_HEADER.match(text.split("\n")[0].strip()):
            return self.result(False, "the header is not StudentID, Subject, Grade, Semester, "
                                      "Score (tab-separated)")
        rows = _csv_rows(text.replace('"', '"""'), delimiter="\t")
        if len(rows) != 4:
            return self.result(False, f"{len(rows)} rows; a header and 3 rows required")
        for row in rows:
            if len(row) != 5:
                return self.result(False, f"a row with {len(row)} fields")
            # IFBench indexes field.strip()[0], which raises on an empty field; empty is unquoted.
            if not all(f.strip()[:1] == '"' and f.strip()[-1:] == '"' for f in row):
                return self.result(False, "a field not in double quotes")
        return self.result(True, "every field quoted")


class DateList(IFBenchCheck):
    """Comma-separated YYYY-MM-DD dates, years 1769-1821, plausible months and days."""

    id = "custom:date_format_list"

    def check(self, text: str) -> CheckResult:
        for date in text.strip().split(","):
            date = date.strip()
            if not _DATE.match(date):
                return self.result(False, f"{T.shorten(date, 20)!r} is not YYYY-MM-DD")
            year, month, day = (int(part) for part in date.split("-"))
            if not 1769 <= year <= 1821 or month > 12 or day > _MONTH_DAYS.get(month, 99):
                return self.result(False, f"{date} is out of range")
        return self.result(True, "every date well formed")


CUSTOM_CHECKS = (PrintMultiples, MultipleChoiceQuestions, ReverseAlphabeticalLines, WordReverse,
                 CharacterReverse, SentenceAlphabet, EuropeanCapitals, CityCSV,
                 SpecialCharacterCSV, QuotesCSV, DateList)
