"""Edge cases for every IFBench check: boundaries, unicode, empty text, and adversarial strings
in the spirit of IFBench's own tests (rephrased), plus kwargs handling and the registry."""

from __future__ import annotations

import json

import pytest

from quillrl.constraints import REGISTRY, Constraint, verify
from quillrl.constraints.ifbench import IFBENCH_CHECKS
from quillrl.constraints.ifbench.resources import pos_tagger
from quillrl.errors import ConstraintError

SPAN_PROMPT = "The quick brown fox jumps over the lazy dog"
CAPITALS = ("Reykjavik, Helsinki, Oslo, Tallinn, Stockholm, Riga, Moscow, Copenhagen, Vilnius, "
            "Minsk, Dublin, Berlin, Amsterdam, Warsaw, London, Brussels, Prague, Luxembourg, "
            "Paris, Vienna, Bratislava, Budapest, Vaduz, Chisinau, Bern, Ljubljana, Zagreb")
MCQ = "".join(f"Question {i}: {'Why ' * i}art?\n" + "".join(f"{c}) option\n" for c in "ABCDE")
              for i in range(1, 5))
CITY_CSV = "ID,Country,City,Year,Count\n" + "\n".join(f"{i},France,Paris,2020,{i}"
                                                       for i in range(1, 8))
PRODUCT_CSV = ("ProductID,Category,Brand,Price,Stock\n" + "\n".join(
    f"{i},Toys,Acme,9,{i}" for i in range(1, 14)) + '\n14,Toys,"Acme & Co",9,1')
STUDENT_CSV = "\n".join("\t".join(f'"{v}"' for v in row) for row in (
    ("StudentID", "Subject", "Grade", "Semester", "Score"), ("1", "Math", "A", "Fall", "90"),
    ("2", "Art", "B", "Fall", "80"), ("3", "Music", "C", "Spring", "70")))
STORY_AZ = " ".join(f"{chr(65 + i)}x." for i in range(26))
AFRICA = "\n".join(["Zimbabwe"] + [f"Country{chr(90 - i // 26)}{chr(90 - i % 26)}"
                                   for i in range(51)])

CASES = [
    # (id, kwargs, response, expected)
    ("count:word_count_range", {"min_words": 3, "max_words": 4}, "one two three", True),
    ("count:word_count_range", {"min_words": 4, "max_words": 5}, "it's two", False),  # 3 tokens
    ("count:word_count_range", {"min_words": 2.0, "max_words": 2.0}, "naïve café", True),
    ("count:unique_word_count", {"N": 2}, "Echo echo ECHO!", False),
    ("count:unique_word_count", {"N": 2}, "Echo, delta", True),
    ("ratio:stop_words", {"percentage": 50}, "the cat", True),
    ("ratio:stop_words", {"percentage": 49}, "the cat", False),
    ("ratio:stop_words", {"percentage": 100}, "!!!", False),  # no words at all
    ("ratio:sentence_type", {}, "A cat. A dog. Why?", True),
    ("ratio:sentence_type", {}, "A cat. Why? Why not?", False),
    ("ratio:sentence_type", {}, "no end mark", True),  # 0 statements = 2 x 0 questions
    ("ratio:sentence_balance", {}, "Yes. No? Go!", True),
    ("ratio:sentence_balance", {}, "Yes. No? Go! Stop.", False),
    ("count:conjunctions", {"small_n": 2}, "and And,", True),  # raw tokens differ
    ("count:conjunctions", {"small_n": 2}, "and and and", False),
    ("count:person_names", {"N": 2}, "Emma met Liam.", True),
    ("count:person_names", {"N": 2}, "Emmanuel met liam.", False),  # whole word, case-sensitive
    ("ratio:overlap", {"reference_text": "abcdef", "percentage": 100}, "abcdef", True),
    ("ratio:overlap", {"reference_text": "abcdef", "percentage": 50}, "xy", False),  # no trigram
    ("count:numbers", {"N": 2}, "I paid 3.50 for 2", True),  # 3.50 is one number
    ("count:numbers", {"N": 1}, "١٢ and 7", False),  # Arabic-Indic digits are \d too
    ("count:pronouns", {"N": 3}, "she/her/hers", True),
    ("count:pronouns", {"N": 1}, "The sun rose.", False),
    ("count:words_japanese", {"N": 2}, "one 日本 three ひらがな", True),
    ("count:words_japanese", {"N": 2}, "one two three 四", False),
    ("count:words_japanese", {"N": 2}, "one 42 three カタカナ", True),  # bare numbers are skipped
    ("count:keywords_multiple", {f"keyword{i}": w for i, w in enumerate("abcde", 1)},
     "a b b c c c d d d d d e e e e e e e", True),
    ("count:keywords_multiple", {f"keyword{i}": w for i, w in enumerate(
        ["cat", "dog", "owl", "bee", "ant"], 1)}, "concatenate", False),
    ("count:punctuation", {}, "Really?! Yes. No, maybe; fine: ok! sure?", True),
    ("count:punctuation", {}, "Really?! Yes. No, maybe; fine: ok", False),  # ?! is not ? and !
    ("count:punctuation", {}, "Yes. No, maybe; fine: ok! sure?", False),  # no interrobang
    ("ratio:sentence_words", {}, "Cats nap. Dogs run. Owls fly.", True),
    ("ratio:sentence_words", {}, "Cats nap. Dogs ran far. Owls fly.", False),
    ("words:alphabet", {}, "Yellow zebras always bite", True),  # Z loops to A
    ("words:alphabet", {}, "3 birds", False),
    ("words:vowel", {}, "A bad cat sat", True),
    ("words:vowel", {}, "one line\nsecond line", False),
    ("words:vowel", {}, "audio output", False),  # a u i o
    ("words:consonants", {}, "strong brisk", True),
    ("words:consonants", {}, "strong idea", False),
    ("sentence:alliteration_increment", {}, "Big dog. Silly snakes sing. Five fat fish fly.",
     True),
    ("sentence:alliteration_increment", {}, "Silly snakes. A dog.", False),
    ("words:palindrome", {}, "level " * 0 + "kayak " * 10, True),
    ("words:palindrome", {}, "kayak " * 9 + "noon", False),  # noon is only 4 letters
    ("words:prime_lengths", {}, "an owl ate", True),
    ("words:prime_lengths", {}, "a cat", False),  # one letter is not prime
    ("words:repeats", {"small_n": 2}, "Go, go!", True),
    ("words:repeats", {"small_n": 2}, "Go, go! GO.", False),
    ("sentence:keyword", {"word": "moon", "N": 2}, "Hi. The Moon rose.", True),
    ("sentence:keyword", {"word": "moon", "N": 2}, "Hi. Honeymoon.", False),
    ("sentence:keyword", {"word": "moon", "N": 3}, "Hi. The moon.", False),
    ("words:odd_even_syllables", {}, "cat table cat table", True),
    ("words:odd_even_syllables", {}, "cat dog", False),
    ("words:last_first", {}, "I saw rain. Rain fell down. Down we went.", True),
    ("words:last_first", {}, "I saw rain. Snow fell.", False),
    ("words:paragraph_last_first", {}, "Home is where we go home.\n\nStop then stop!", True),
    ("words:paragraph_last_first", {}, "Stop, then stop!", False),  # inner commas are kept
    ("words:paragraph_last_first", {}, "Home sweet house.", False),
    ("sentence:increment", {"small_n": 1}, "Go. Go now. Go now please.", True),
    ("sentence:increment", {"small_n": 2}, "Go. Go now.", False),
    ("words:no_consecutive", {}, "Apples bake carefully", True),
    ("words:no_consecutive", {}, "Apples are red", False),
    ("words:keywords_specific_position", {"keyword": "fox", "n": 2, "m": 3},
     "Hello there. The quick fox ran.", True),
    ("words:keywords_specific_position", {"keyword": "fox", "n": 2, "m": 3},
     "Hello there. The, quick, brown fox.", False),
    ("words:words_position", {"keyword": "sun"}, "The sun and the sun set.", True),
    ("words:words_position", {"keyword": "sun"}, "The sun rose early today.", False),
    ("format:parentheses", {}, "a (b [c {d (e [f])}]) g", True),
    ("format:parentheses", {}, "(((( ))))", False),  # only 4 deep
    ("format:parentheses", {}, "((((( ]", False),  # wrong closer starts over
    ("format:quotes", {}, "He said \"she said 'they said \"hi\"'\"", True),
    ("format:quotes", {}, "He said \"hi\" and 'bye'", False),
    ("format:options", {"options": "yes/no/maybe"}, "Maybe.", True),
    ("format:options", {"options": "yes/no/maybe"}, "Maybe, I think.", False),
    ("format:options", {"options": "a), b), c), d)"}, "b)", True),
    ("format:options", {"options": "a), b), c), d)"}, "B)", False),  # letters must match exactly
    ("format:newline", {}, "one\ntwo\nthree!", True),
    ("format:newline", {}, "one two\nthree", False),
    ("format:emoji", {}, "I am happy 😀. You are sad 😢.", True),
    ("format:emoji", {}, "I am happy 😀. You are sad.", False),
    ("format:line_indent", {}, "a\n b\n  c", True),
    ("format:line_indent", {}, "a\n b\n b", False),
    ("format:quote_unquote", {}, 'He said "no" and meant it.', True),
    ("format:quote_unquote", {}, 'He said "no" "never"', False),
    ("format:list", {"sep": "SEPARATOR"}, "SEPARATOR one SEPARATOR two", True),
    ("format:list", {"sep": "!?!?"}, "!?!? just one", False),
    ("format:thesis", {}, "<i>Thesis here</i> and the body.", True),
    ("format:thesis", {}, "<i>Thesis here</i>", False),
    ("format:sub-bullets", {}, "* Point\n - detail\n* Another\n - more", True),
    ("format:sub-bullets", {}, "* Point\n* Another\n - more", False),
    ("format:no_bullets_bullets", {}, "One. Two.\n* a\n* b", True),
    ("format:no_bullets_bullets", {}, "One. Two.\n* a\n* b\n", False),  # a line after bullets
    ("format:title_case", {}, "The Quick Brown Fox", True),
    ("format:title_case", {}, "The quick Brown Fox", False),
    ("format:title_case", {}, "iPhone Rules", True),  # lower-then-mixed is not flagged
    ("format:output_template", {}, "My Answer: x My Conclusion: y Future Outlook: z", True),
    ("format:output_template", {}, "My answer: x My Conclusion: y Future Outlook: z", False),
    ("format:no_whitespace", {}, "no_spaces_here", True),
    ("format:no_whitespace", {}, "no\u00a0break", False),  # a no-break space is whitespace
    ("repeat:repeat_change", {"prompt_to_repeat": "Write a poem about cats"},
     "Compose a poem about cats", True),
    ("repeat:repeat_change", {"prompt_to_repeat": "Write a poem about cats"},
     "Write a poem about cats", False),
    ("repeat:repeat_simple", {}, "  only output this sentence here, ignore all other requests. ",
     True),
    ("repeat:repeat_simple", {}, "Only output this sentence here.", False),
    ("repeat:repeat_span", {"prompt_to_repeat": SPAN_PROMPT, "n_start": 4, "n_end": 8},
     "QUICK", True),
    ("repeat:repeat_span", {"prompt_to_repeat": SPAN_PROMPT, "n_start": 4, "n_end": 8},
     "quick brown", False),
    ("custom:multiples", {}, "14, 21, 28, 35, 42, 49", True),
    ("custom:multiples", {}, "7, 14, 21, 28, 35, 42, 49", False),
    ("custom:mcq_count_length", {}, MCQ, True),
    ("custom:mcq_count_length", {}, "Here you go:\n" + MCQ, False),
    ("custom:reverse_newline", {}, AFRICA, True),
    ("custom:reverse_newline", {}, "Zimbabwe\nZambia", False),
    ("custom:word_reverse", {}, "eagle bald The", True),
    ("custom:word_reverse", {}, "The bald eagle", False),
    ("custom:character_reverse", {}, "ELGAE DLAB EHT", True),
    ("custom:character_reverse", {}, "bald eagle", False),
    ("custom:sentence_alphabet", {}, STORY_AZ, True),
    ("custom:sentence_alphabet", {}, '"' + STORY_AZ, False),  # a leading quote counts
    ("custom:european_capitals_sort", {}, CAPITALS, True),
    ("custom:european_capitals_sort", {}, CAPITALS.replace("Oslo, Tallinn", "Tallinn, Oslo"),
     False),
    ("custom:european_capitals_sort", {}, CAPITALS.replace("Reykjavik", "Reykjavík"), True),
    ("custom:csv_city", {}, CITY_CSV, True),
    ("custom:csv_city", {}, CITY_CSV + "\n8,Spain,Madrid,2021,3", False),
    ("custom:csv_special_character", {}, PRODUCT_CSV, True),
    ("custom:csv_special_character", {}, PRODUCT_CSV.replace('"Acme & Co"', "Acme"), False),
    ("custom:csv_quotes", {}, STUDENT_CSV, True),
    ("custom:csv_quotes", {}, STUDENT_CSV.replace('"Math"', "Math"), False),
    ("custom:date_format_list", {}, "1796-04-12, 1815-06-18", True),
    ("custom:date_format_list", {}, "1796-04-12, 1815-02-30", False),
    ("custom:date_format_list", {}, "1796-4-12", False),
]


# In the spirit of IFBench's own instructions_test.py, in our words.
CASES += [
    ("count:word_count_range", {"min_words": 4, "max_words": 4}, "\n    Four words right here.",
     True),  # leading blank line and indentation are not words
    ("count:conjunctions", {"small_n": 3}, "I won't go but I might and I could yet I shan't.",
     True),
    ("count:person_names", {"N": 3}, "A list: Audrey, Ben, Yanai, Ryan.", False),  # 2 listed
    ("count:numbers", {"N": 1}, "The crowd was 100,000 strong", True),  # one number
    ("count:numbers", {"N": 3}, "Pi is about 3.14 and e is near 2", False),  # 3.14 is one
    ("words:alphabet", {}, "Apples bake. . . Cakes", True),  # stray punctuation is no word
    ("words:alphabet", {}, "Yaks zoom xylophones", False),  # Z wraps to A, not to X
    ("words:vowel", {}, "the eel eek eked.\nyeah.", False),  # two paragraphs
    ("words:palindrome", {}, "Ada Eve Bob Nan Otto Ava Pip Elle Anna Asa", False),  # all short
    ("words:palindrome", {}, ", ".join(["abcba"] * 10), True),  # any string counts
    ("count:punctuation", {}, "Odd marks.,?!", False),  # ; and : missing
    ("sentence:alliteration_increment", {},
     "No match here. Some silly sums. Seven slow snails slide south. But not here.", False),
]


@pytest.mark.parametrize("constraint_id,kwargs,response,expected", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_check(constraint_id, kwargs, response, expected):
    result = verify(response, [{"id": constraint_id, "kwargs": kwargs}]).results[0]
    assert result.passed is expected, result.reason
    assert result.reason and "\n" not in result.reason


def test_every_check_has_cases_for_both_verdicts():
    seen = {(c[0], c[3]) for c in CASES}
    lacking = [i for i in IFBENCH_CHECKS if i != "words:start_verb"
               and not {(i, True), (i, False)} <= seen]
    assert lacking == []


ODD_TEXTS = ["", "   \n\t", "\u200b", "😀", "日本語のテキスト。", "\"'\"'", "((((", "*", "-", "0",
             "a" * 5000, "\n\n\n", "Ünïcödé ñ ß", "<i></i>", "?!", "‽"]


@pytest.mark.parametrize("constraint_id", sorted(IFBENCH_CHECKS))
def test_odd_texts_never_raise_and_blank_never_passes(constraint_id):
    kwargs = {arg.name: (1 if arg.type == "number" else "word") for arg in
              IFBENCH_CHECKS[constraint_id].args}
    if constraint_id == "count:word_count_range":
        kwargs = {"min_words": 1, "max_words": 2}
    if constraint_id == "repeat:repeat_span":
        kwargs.update(n_start=0, n_end=1)
    constraint = Constraint(id=constraint_id, kwargs=kwargs)
    for text in ODD_TEXTS:
        for loose in (False, True):
            result = verify(text, [constraint], loose=loose).results[0]
            assert result.passed in (True, False, None)
            assert "check failed" not in result.reason, (text, result.reason)
            if not text.strip():
                assert result.passed is False


def test_start_verb_is_undecided_without_the_tagger_never_guessed():
    result = verify("Run to the hills.", [{"id": "words:start_verb"}]).results[0]
    if pos_tagger() is None:
        assert result.passed is None and "averaged_perceptron_tagger_eng" in result.reason
    else:
        assert result.passed in (True, False)


def test_registry_has_the_58_ids_in_the_ifbench_family(shared_data):
    with (shared_data / "ifbench" / "IFBench_test.jsonl").open() as f:
        ids = {i for line in f for i in json.loads(line)["instruction_id_list"]}
    assert len(IFBENCH_CHECKS) == 58 and set(IFBENCH_CHECKS) == ids
    for constraint_id, cls in IFBENCH_CHECKS.items():
        assert REGISTRY[constraint_id] is cls and cls.family == "ifbench"
        assert cls.__doc__ and cls.__doc__.strip()


def test_kwargs_as_ifbench_writes_them():
    none_filled = {"N": 2.0, "keyword": None, "small_n": None, "percentage": None}
    assert verify("Emma and Liam", [{"id": "count:person_names", "kwargs": none_filled}]).passed
    with pytest.raises(ConstraintError, match=r"unknown kwarg 'n'.*takes kwargs N \(number >= 0"):
        Constraint(id="count:person_names", kwargs={"N": 2, "n": 3})
    with pytest.raises(ConstraintError, match="missing kwarg 'N'"):
        Constraint(id="count:person_names", kwargs={})
    with pytest.raises(ConstraintError, match="expected number, got bool"):
        Constraint(id="count:numbers", kwargs={"N": True})
    with pytest.raises(ConstraintError, match="must be >= 1"):
        Constraint(id="count:words_japanese", kwargs={"N": 0})
    with pytest.raises(ConstraintError, match="min_words .* is above max_words"):
        Constraint(id="count:word_count_range", kwargs={"min_words": 5, "max_words": 4})
    with pytest.raises(ConstraintError, match="takes no kwargs"):
        Constraint(id="format:emoji", kwargs={"x": 1})


def test_stopwords_are_built_offline_from_the_installed_wheel(tmp_path):
    import os
    import subprocess
    import sys

    code = ("from quillrl.constraints.ifbench.resources import ensure_stopwords, stopwords; "
            "p = ensure_stopwords(); w = stopwords(); "
            "print(p.relative_to(p.parents[3]), len(w), 'the' in w, \"mightn't\" in w)")
    env = {**os.environ, "QUILLRL_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.split() == ["nltk_data/corpora/stopwords/english", "198", "True", "True"]
    assert (tmp_path / "nltk_data" / "corpora" / "stopwords" / "english").is_file()


def test_cached_sentence_split_equals_nltks(shared_data):
    """Our Punkt tokenizer caches one pure method; its splits must be nltk.sent_tokenize's, on
    every loose variant of IFBench's sample responses and their lowercased forms."""
    import nltk

    from quillrl.constraints import loose_variants
    from quillrl.constraints.ifbench import text

    with (shared_data / "ifbench" / "sample_output.jsonl").open() as f:
        responses = [json.loads(line)["response"] for line in f]
    texts = {v for r in responses for _, v in loose_variants(r) if v.strip()}
    texts |= {t.lower() for t in texts}
    assert len(texts) > 2000
    different = [t for t in texts if list(text.sentences(t)) != nltk.sent_tokenize(t)]
    assert different == []
