"""IFBench parity: our verdicts on IFBench's 294 sample responses equal IFBench's own committed
evaluation (eval_results_{strict,loose}.jsonl), instruction by instruction, strict and loose,
except where docs/results.md ("IFBench parity") explains why not:

1. key 163, ``ratio:sentence_type``: the committed outputs predate IFBench's switch to NLTK's
   ``sent_tokenize``; our verdict is the current splitter's (False where they say True);
2. ``words:start_verb`` (6 verdicts): NLTK's perceptron tagger is on no PyPI package, so without
   it the verdict is undecided (None), never a guess; with it on ``nltk.data.path`` it must equal
   IFBench's.

Responses join tasks as IFBench's evaluation_lib joins them (exact prompt, then stripped); one
sample record's prompt (record 268) is corrupt and joins nothing, and 7 prompts get no response.

CI cannot reach GitHub and we do not vendor IFBench's code, so the reference for the first tests
is the committed outputs; the last test compares with IFBench's code run now, whose verdicts
bench/ifbench_own_code.py --fixture keeps in tests/fixtures/. Against that code itself (db69a6f, the commit the data is pinned to, run now)
all 334 verdicts and the four figures are equal, key 163 included, and that run differs from the
committed outputs in key 163 alone: ``bench/ifbench_own_code.py``, docs/results.md ("IFBench
parity").
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quillrl.constraints import Constraint, verify
from quillrl.constraints.ifbench.resources import pos_tagger

SENTENCE_SPLITTER_CHANGE = {("163", "ratio:sentence_type")}
MISSING = ["268", "269", "270", "271", "272", "273", "274"]
CORRUPT_RECORD = 268
# IFBench's four figures, in percent, from its committed outputs over all 300 prompts (a prompt
# without a response fails, as evaluation_lib's empty_output counts it).
IFBENCH_FIGURES = (25.67, 27.03, 29.00, 31.40)
# Ours: key 163 fails, and without the tagger the 3 start_verb passes are undecided (fail).
OURS_WITHOUT_TAGGER = (24.33, 25.87, 27.67, 30.23)
# With the tagger (found under the shared data root): only key 163's one verdict differs.
OURS_WITH_TAGGER = (25.33, 26.74, 28.67, 31.10)


def _load(path):
    with path.open() as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def ifbench(shared_data):
    folder = shared_data / "ifbench"
    tasks = _load(folder / "IFBench_test.jsonl")
    samples = _load(folder / "sample_output.jsonl")
    committed = {mode: _load(folder / f"eval_results_{mode}.jsonl") for mode in ("strict", "loose")}
    return folder, tasks, samples, committed


@pytest.fixture(scope="module")
def compared(ifbench):
    """Per joined sample: (key, ids, ours strict, ours loose, theirs strict, theirs loose)."""
    _, tasks, samples, committed = ifbench
    exact = {t["prompt"]: t for t in tasks}
    stripped = {t["prompt"].strip(): t for t in tasks}
    rows, unmatched = [], []
    for i, (sample, strict, loose) in enumerate(zip(samples, committed["strict"],
                                                    committed["loose"])):
        assert strict["prompt"] == sample["prompt"]  # the outputs follow the sample file's order
        task = exact.get(sample["prompt"]) or stripped.get(sample["prompt"].strip())
        if task is None:
            unmatched.append(i)
            continue
        constraints = [Constraint(id=c, kwargs=k)
                       for c, k in zip(task["instruction_id_list"], task["kwargs"])]
        ours_s = [r.passed for r in verify(sample["response"], constraints).results]
        ours_l = [r.passed for r in verify(sample["response"], constraints, loose=True).results]
        rows.append((task["key"], task["instruction_id_list"], ours_s, ours_l,
                     strict["follow_instruction_list"], loose["follow_instruction_list"]))
    return rows, unmatched


def test_every_verdict_equals_ifbenchs_own_but_the_explained_ones(compared, shared_data):
    rows, unmatched = compared
    assert unmatched == [CORRUPT_RECORD]
    assert len(rows) == 293 and sum(len(r[1]) for r in rows) == 334
    tagged = pos_tagger() is not None
    # the shared data root carries NLTK's tagger (data README): found there, nothing to install
    assert tagged == (shared_data / "nltk" / "taggers" / "averaged_perceptron_tagger_eng").is_dir()
    unexplained, splitter, undecided = [], set(), 0
    for key, ids, ours_s, ours_l, theirs_s, theirs_l in rows:
        for j, constraint_id in enumerate(ids):
            ours, theirs = (ours_s[j], ours_l[j]), (theirs_s[j], theirs_l[j])
            if (key, constraint_id) in SENTENCE_SPLITTER_CHANGE:
                assert ours == (False, False) and theirs == (True, True)
                splitter.add((key, constraint_id))
            elif constraint_id == "words:start_verb" and not tagged:
                assert ours == (None, None)
                undecided += 1
            elif ours != theirs:
                unexplained.append((key, constraint_id, ours, theirs))
    assert unexplained == []
    assert splitter == SENTENCE_SPLITTER_CHANGE
    assert undecided == (0 if tagged else 6)


def _figures(summary) -> tuple[float, ...]:
    return tuple(round(100 * summary[k], 2) for k in (
        "prompt_level_strict_acc", "inst_level_strict_acc",
        "prompt_level_loose_acc", "inst_level_loose_acc"))


def test_ifbench_figures_from_its_committed_outputs(ifbench, compared):
    _, tasks, _, _ = ifbench
    rows, _ = compared
    theirs = {key: (s, lo) for key, _, _, _, s, lo in rows}
    lists = [theirs.get(t["key"], ([False] * len(t["instruction_id_list"]),) * 2) for t in tasks]
    summary = {
        "prompt_level_strict_acc": sum(all(s) for s, _ in lists) / len(lists),
        "inst_level_strict_acc": sum(map(sum, (s for s, _ in lists))) / 344,
        "prompt_level_loose_acc": sum(all(lo) for _, lo in lists) / len(lists),
        "inst_level_loose_acc": sum(map(sum, (lo for _, lo in lists))) / 344}
    assert _figures(summary) == IFBENCH_FIGURES


def test_cli_joins_as_ifbench_and_reports_the_corrupt_record(ifbench, tmp_path):
    from typer.testing import CliRunner

    from quillrl.cli import app

    folder, tasks, _, _ = ifbench
    out = tmp_path / "verdicts.jsonl"
    result = CliRunner().invoke(app, ["verify", str(folder / "IFBench_test.jsonl"),
                                      str(folder / "sample_output.jsonl"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["n"] == 300 and summary["n_instructions"] == 344
    assert summary["missing_responses"] == 7 and summary["unmatched_responses"] == 1
    assert "I want you to act as a teacher" in result.stderr
    if pos_tagger() is None:
        assert _figures(summary) == OURS_WITHOUT_TAGGER
        assert summary["undecided_strict"] == summary["undecided_loose"] == 6
        assert "6 verdict(s) undecided" in result.stderr and "257 words:start_verb" in result.stderr
    else:
        assert _figures(summary) == OURS_WITH_TAGGER
        assert summary["undecided_strict"] == summary["undecided_loose"] == 0
    lines = {line["id"]: line for line in map(json.loads, out.open())}
    assert [k for k, line in lines.items() if not line["has_response"]] == MISSING
    # Keys 0, 1 and 153 join only by their stripped prompt.
    assert all(lines[k]["has_response"] for k in ("0", "1", "153"))


def test_every_verdict_equals_ifbenchs_code_run_now(compared):
    """334 of 334, strict and loose, against IFBench's own run_eval.py at db69a6f run on the same
    files (tests/fixtures/ifbench_db69a6f_verdicts.json, written from bench/ifbench_own_code.py's
    outputs; docs/results.md, "IFBench parity"): key 163 included, no exception. Needs the tagger
    (the shared data root has it); without it the 6 ``words:start_verb`` verdicts are undecided."""
    if pos_tagger() is None:
        pytest.skip("NLTK's perceptron tagger is not under the data root or on nltk.data.path")
    code_run = json.loads((Path(__file__).parent / "fixtures" / "ifbench_db69a6f_verdicts.json").read_text())
    rows, _ = compared
    agree = differ = 0
    for key, ids, ours_s, ours_l, _, _ in rows:
        for j in range(len(ids)):
            same = (ours_s[j], ours_l[j]) == (code_run["strict"][key][j], code_run["loose"][key][j])
            agree, differ = agree + same, differ + (not same)
    assert (agree, differ) == (334, 0)
