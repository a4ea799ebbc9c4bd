"""IFBench parity against IFBench's own code, run now: its ``run_eval.py`` beside ``quillrl verify``.

``tests/test_ifbench_conformance.py`` compares our verdicts with the eval outputs IFBench
committed (the shared data's ``eval_results_{strict,loose}.jsonl``), because CI cannot reach
GitHub. Those outputs are older than IFBench's code; this script runs the code itself on the
same two files and compares instruction by instruction, strict and loose, and the four figures.

IFBench's side runs in a subprocess, with a Python that has its requirements, on a checkout you
bring (we never vendor its code). Nothing is downloaded: IFBench calls ``nltk.download`` at import
for anything missing from ``nltk.data.path``, and the subprocess replaces ``nltk.download`` with a
refusal that it reports (``refused_downloads``). ``NLTK_DATA`` holds the data root's ``nltk/``
(the perceptron tagger) and quillrl's own NLTK root (``punkt_tab/english`` and the English
stopwords, built at set-up; docs/results.md, "IFBench resources"). IFBench also asks for the old
``tokenizers/punkt`` pickle; only its ``count_sentences`` loads it, which none of IFBench's own
checks calls, so the refusal changes no verdict (a call would raise, not pass silently).

Our side is the code path of ``quillrl verify`` (read, join as IFBench's ``evaluation_lib``,
``verify_task``, ``summarize``). Commands (docs/results.md, "IFBench parity"):

    git clone https://github.com/allenai/IFBench /tmp/ifbench-src   # here: the fetch mirror
    git -C /tmp/ifbench-src checkout db69a6f
    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/ifbench_own_code.py /tmp/ifbench-src \\
        --python /tmp/ifbench-venv/bin/python --data-root ../shared/data

The last line is a JSON summary; the exit status is 1 when a verdict or a figure differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Runs in IFBench's Python: refuse downloads, then run its run_eval.py as a script.
_RUN_IFBENCH = """\
import runpy, sys
import nltk

def refuse(name, *args, **kwargs):
    print("refused nltk.download:", name, file=sys.stderr)
    return False

nltk.download = refuse
src = sys.argv[1]
sys.path.insert(0, src)
sys.argv = [src + "/run_eval.py"] + sys.argv[2:]
runpy.run_path(src + "/run_eval.py", run_name="__main__")
"""
_VERSIONS = ("import json, importlib.metadata as m; print(json.dumps({d: m.version(d) for d in "
             "('nltk', 'emoji', 'syllapy', 'langdetect', 'absl-py', 'immutabledict')}))")
MODES = ("strict", "loose")


def run_ifbench(src: Path, python: str, tasks: Path, responses: Path, out_dir: Path,
                nltk_data: list[Path]) -> dict:
    """IFBench's verdicts, ``{mode: [record per test prompt, in file order]}``, and its run."""
    env = {**os.environ, "NLTK_DATA": os.pathsep.join(map(str, nltk_data)),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    started = time.perf_counter()
    done = subprocess.run([python, "-c", _RUN_IFBENCH, str(src), f"--input_data={tasks}",
                           f"--input_response_data={responses}", f"--output_dir={out_dir}"],
                          env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"IFBench's run_eval.py failed ({done.returncode}):\n{done.stderr[-4000:]}")
    # run_eval names its outputs after the responses file: <stem>-eval_results_<mode>.jsonl
    verdicts = {mode: _read(out_dir / f"{responses.stem}-eval_results_{mode}.jsonl")
                for mode in MODES}
    refused = [line.split(":", 1)[1].strip() for line in done.stderr.splitlines()
               if line.startswith("refused nltk.download:")]
    versions = json.loads(subprocess.run([python, "-c", _VERSIONS], capture_output=True,
                                         text=True, check=True).stdout)
    return {"verdicts": verdicts, "refused_downloads": refused, "seconds": round(seconds, 2),
            "versions": versions}


def run_quillrl(tasks: Path, responses: Path) -> tuple[dict[str, dict], dict]:
    """Our rows by task id, as ``quillrl verify`` makes them, and its summary."""
    from quillrl.constraints import read_tasks
    from quillrl.data import read_responses
    from quillrl.eval.ifeval import join_responses, summarize, verify_task

    joined, _ = join_responses(read_tasks(tasks).records, read_responses(responses).records)
    rows = [verify_task(task, response) for task, response in joined]
    return {row["id"]: row for row in rows}, summarize(rows)


def compare(raw_tasks: list[dict], ours: dict[str, dict], theirs: dict[str, list[dict]]) -> dict:
    """Per instruction of every answered prompt: equal verdicts, strict and loose.

    A prompt without a response fails every instruction on both sides (IFBench's
    ``empty_output``); those are counted apart, as they compare no checking."""
    result = {}
    for mode in MODES:
        agree, differ, unanswered = 0, [], 0
        for task, record in zip(raw_tasks, theirs[mode], strict=True):
            if record["prompt"] != task["prompt"]:
                sys.exit(f"IFBench's {mode} output is not in the test file's order")
            row = ours[str(task["key"])]
            pairs = zip(task["instruction_id_list"], row["constraints"],
                        record["follow_instruction_list"], strict=True)
            for instruction, verdict, their in pairs:
                if not row["has_response"]:
                    unanswered += 1
                    if verdict[mode] is not False or their is not False:
                        differ.append([task["key"], instruction, verdict[mode], their])
                elif verdict[mode] is their:
                    agree += 1
                else:
                    differ.append([task["key"], instruction, verdict[mode], their])
        result[mode] = {"agree": agree, "of": agree + len(differ),
                        "unanswered_instructions": unanswered, "differ": differ}
    return result


def figures(theirs: dict[str, list[dict]]) -> list[float]:
    """IFBench's four figures (percent) over every test prompt, as its print_report counts."""
    out = []
    for mode in MODES:
        records = theirs[mode]
        lists = [r["follow_instruction_list"] for r in records]
        out += [100 * sum(r["follow_all_instructions"] for r in records) / len(records),
                100 * sum(map(sum, lists)) / sum(map(len, lists))]
    return [round(x, 2) for x in out]


def against_committed(raw_tasks: list[dict], theirs: dict[str, list[dict]],
                      folder: Path) -> dict[str, list]:
    """Where IFBench's code, run now, differs from the outputs it committed (joined by prompt,
    exact then stripped, as its evaluation_lib joins)."""
    differ = {}
    for mode in MODES:
        committed = {}
        for record in _read(folder / f"eval_results_{mode}.jsonl"):
            committed.setdefault(record["prompt"], record)
            committed.setdefault(record["prompt"].strip(), record)
        differ[mode] = []
        for task, now in zip(raw_tasks, theirs[mode]):
            old = committed.get(task["prompt"]) or committed.get(task["prompt"].strip())
            if old is None:
                continue
            for instruction, a, b in zip(task["instruction_id_list"],
                                         now["follow_instruction_list"],
                                         old["follow_instruction_list"]):
                if a != b:
                    differ[mode].append([task["key"], instruction, a, b])
    return differ


def write_fixture(path: Path, raw_tasks: list[dict], theirs: dict[str, list[dict]],
                  commit: str | None) -> None:
    """IFBench's ``follow_instruction_list`` per task key, strict and loose: what
    ``tests/test_ifbench_conformance.py`` compares every verdict of ours with in CI, where
    IFBench's code cannot be fetched."""
    out = {"source": f"allenai/IFBench run_eval.py at {commit}, on the data root's "
                     "ifbench/{IFBench_test,sample_output}.jsonl with its perceptron tagger "
                     "(bench/ifbench_own_code.py --fixture)"}
    for mode in MODES:
        out[mode] = {str(t["key"]): r["follow_instruction_list"]
                     for t, r in zip(raw_tasks, theirs[mode])}
    path.write_text(json.dumps(out, separators=(",", ":")))


def _read(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _commit(src: Path) -> str | None:
    done = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def main() -> int:
    from quillrl.constraints.ifbench.resources import ensure_stopwords, pos_tagger
    from quillrl.constraints.punkt_data import ensure_punkt, punkt_root
    from quillrl.home import resolve_data_root

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ifbench", type=Path, help="an IFBench checkout (run_eval.py, ifbench/)")
    ap.add_argument("--python", default=sys.executable, help="a Python with IFBench's "
                    "requirements (nltk, emoji, syllapy, langdetect, absl-py, immutabledict)")
    ap.add_argument("--data-root", type=Path, default=None,
                    help="shared data root (default: $QUILLRL_DATA or ../shared/data)")
    ap.add_argument("--out-dir", type=Path, default=None,
                    help="keep IFBench's eval_results files here (default: a temporary folder)")
    ap.add_argument("--fixture", type=Path, default=None,
                    help="write IFBench's verdicts by task key here (the conformance test's "
                         "tests/fixtures/ifbench_db69a6f_verdicts.json)")
    args = ap.parse_args()

    root = resolve_data_root(args.data_root)
    os.environ["QUILLRL_DATA"] = str(root)  # where our pos_tagger() looks for NLTK's tagger
    folder = root / "ifbench"
    tasks, responses = folder / "IFBench_test.jsonl", folder / "sample_output.jsonl"
    ensure_punkt()
    ensure_stopwords()
    raw_tasks = _read(tasks)

    started = time.perf_counter()
    ours, summary = run_quillrl(tasks, responses)
    our_seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="ifbench-own-") as tmp:
        out_dir = args.out_dir or Path(tmp)
        theirs = run_ifbench(args.ifbench.resolve(), args.python, tasks, responses, out_dir,
                             [root / "nltk", punkt_root()])

    verdicts = compare(raw_tasks, ours, theirs["verdicts"])
    our_figures = [round(100 * summary[k], 2) for k in (
        "prompt_level_strict_acc", "inst_level_strict_acc",
        "prompt_level_loose_acc", "inst_level_loose_acc")]
    their_figures = figures(theirs["verdicts"])
    report = {
        "ifbench": {"path": str(args.ifbench), "commit": _commit(args.ifbench),
                    "python": args.python, "versions": theirs["versions"],
                    "refused_downloads": theirs["refused_downloads"],
                    "seconds": theirs["seconds"]},
        "quillrl": {"pos_tagger": pos_tagger() is not None, "seconds": round(our_seconds, 2),
                    "undecided": [summary["undecided_strict"], summary["undecided_loose"]]},
        "prompts": len(raw_tasks), "instructions": sum(len(t["instruction_id_list"])
                                                       for t in raw_tasks),
        **verdicts,
        "figures": {"order": ["prompt strict", "inst strict", "prompt loose", "inst loose"],
                    "quillrl": our_figures, "ifbench": their_figures},
        "ifbench_now_vs_committed": against_committed(raw_tasks, theirs["verdicts"], folder),
    }
    if args.fixture:
        write_fixture(args.fixture, raw_tasks, theirs["verdicts"], _commit(args.ifbench))
    print(json.dumps(report))
    same = all(not verdicts[m]["differ"] for m in MODES) and our_figures == their_figures
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
