"""Hostile but realistic input to every verb that reads or writes files.

Each case in :data:`CASES` must end with exit status 2, a one-line ``error:`` on stderr naming
the file (and the line and field where there is one), no traceback, and the working tree
exactly as it was: nothing written, truncated or appended anywhere. The cases that are not
errors (``--skip-invalid``, a torn last metrics line) are tested below them: counted, named
and reported, never silently dropped. docs/results.md lists every case and how it is handled.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quillrl.cli import app

TASK = {"id": "t1", "prompt": "Write a poem.",
        "constraints": [{"id": "creative:word_range", "kwargs": {"max_words": 50}}]}
FREE_TASK = {"id": "t2", "prompt": "Write a poem.",
             "constraints": [{"id": "free_text", "kwargs": {"text": "make it sad"}}]}
PAIR = {"id": "p1", "prompt": "Write a poem.", "chosen": "A long good poem.", "rejected": "Bad."}
PAIR2 = {"id": "p2", "prompt": "Write a story.", "chosen": "A story.", "rejected": "No."}
JUDGMENT = {"id": "p1", "judge": "baseline:length", "mode": None, "swap": False, "order_seed": 0,
            "chosen_slot": "A", "p_a": 1.0, "p_chosen": 1.0, "verdict": "A", "valid": True,
            "flipped": None, "cost": {"prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0,
                                      "backend_calls": 0.0}}
DEEP = "[" * 200_000 + "]" * 200_000
MISSING_MODEL = "no-such-model-dir"  # training must fail on its data before it looks for this


def jsonl(*rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


@dataclass
class Case:
    """``files``: relative path -> text (str) or bytes, or None for a directory; ``args``: the
    command line, with ``{tmp}`` standing for the working directory; ``names``: what the one
    error line must contain (the file, and the line or field where there is one)."""

    id: str
    files: dict[str, str | bytes | None]
    args: list[str]
    names: list[str]


def policy_yaml(**extra: str) -> str:
    lines = [f"model: {MISSING_MODEL}", "tasks: {tmp}/tasks.jsonl", "output_dir: {tmp}/run",
             "reward:", "  judge: baseline:length"]
    return "\n".join(lines + [f"{k}: {v}" for k, v in extra.items()]) + "\n"


BASE = {"tasks.jsonl": jsonl(TASK), "responses.jsonl": jsonl({"id": "t1", "response": "A poem."}),
        "pairs.jsonl": jsonl(PAIR, PAIR2), "judgments.jsonl": jsonl(JUDGMENT, {**JUDGMENT, "id": "p2"}),
        "outdir": None, "afile.txt": "not a folder\n"}
ALIGN = ["eval", "alignment", "--pairs", "{tmp}/pairs.jsonl"]
JUDGE = ["judge", "--pairs", "{tmp}/pairs.jsonl", "--judge", "baseline:length"]
WQ = "data/preferences/creativity_eval/wq_style_mimic.jsonl"
WQRM = "data/preferences/creativity_eval/wqrm_annotations.json"
EQB = "data/prompts/eqbench/creative_writing_prompts_v3.json"
IMPORT = ["data", "import", "--data-root", "{tmp}/data", "--out", "{tmp}/imported.jsonl"]

# The verbs of generation and policy evaluation (issues 9, 12, 13). A server spec that nothing
# answers is a valid --model needing no weights: every case must fail before it is called.
OAI = "openai:http://127.0.0.1:9/v1#m"
GEN = ["generate", "--model", OAI, "--tasks", "{tmp}/tasks.jsonl", "--out", "{tmp}/o.jsonl"]
IFE = ["eval", "ifeval", "--model", OAI, "--tasks", "{tmp}/tasks.jsonl", "--out", "{tmp}/o.jsonl"]
CONS = ["eval", "constraints", "--tasks", "{tmp}/tasks.jsonl", "--responses", "{tmp}/responses.jsonl"]
WIN = ["eval", "winrate", "--tasks", "{tmp}/tasks.jsonl", "--a", "{tmp}/responses.jsonl", "--b",
       "{tmp}/responses.jsonl", "--judge", "baseline:length"]
POL = ["eval", "policy", "--base", OAI, "--trained", OAI, "--tasks", "{tmp}/tasks.jsonl", "--judge",
       "baseline:length", "--out-dir", "{tmp}/pol"]
RESP = {"id": "t1", "response": "A poem."}
SR = ["serve-reward", "--config", "{tmp}/c.yaml", "--port", "0"]
TASK_FILES = {  # a tasks file as hostile users write them: kind -> (content, ":LINE" or "", reason)
    "latin1-line": (jsonl(TASK).encode() + '{"id": "é"}\n'.encode("latin-1"), ":2", "UTF-8"),
    "utf16": (jsonl(TASK).encode("utf-16"), "", "UTF-16"),
    "json-array": (json.dumps([TASK, FREE_TASK], indent=1), ":1", "JSON array"),
    "deep-nesting": (jsonl(TASK) + DEEP + "\n", ":2", "nested too deeply"),
    "bad-line": (jsonl(TASK, {"id": "z"}), ":2", "prompt"),
}


def task_file_cases(verb: str, args: list[str]) -> list[Case]:
    """One case per hostile tasks file, given to ``verb`` as its ``--tasks``."""
    return [Case(f"{verb}-tasks-{kind}", {"t.jsonl": content}, [*args, "--tasks", "{tmp}/t.jsonl"],
                 [f"t.jsonl{line}", reason]) for kind, (content, line, reason) in TASK_FILES.items()]


GENERATION_CASES = [
    # -- output paths ----------------------------------------------------------------------------
    Case("generate-out-is-dir", {}, [*GEN, "--out", "{tmp}/outdir"], ["--out", "outdir", "directory"]),
    Case("generate-out-is-tasks", {}, [*GEN, "--out", "{tmp}/tasks.jsonl"], ["tasks.jsonl", "input"]),
    Case("generate-out-under-a-file", {}, [*GEN, "--out", "{tmp}/afile.txt/x.jsonl"],
         ["afile.txt", "is a file"]),
    Case("ifeval-out-is-dir", {}, [*IFE, "--out", "{tmp}/outdir"], ["--out", "outdir", "directory"]),
    Case("ifeval-out-is-tasks", {}, [*IFE, "--out", "{tmp}/tasks.jsonl"], ["tasks.jsonl", "input"]),
    Case("ifbench-out-is-tasks", {}, ["eval", "ifbench", *IFE[2:], "--out", "{tmp}/tasks.jsonl"],
         ["tasks.jsonl", "input"]),
    Case("ifeval-verdicts-is-out", {}, [*IFE, "--verdicts", "{tmp}/o.jsonl"], ["--verdicts", "o.jsonl", "input"]),
    Case("ifeval-verdicts-is-dir", {}, [*IFE, "--verdicts", "{tmp}/outdir"], ["--verdicts", "directory"]),
    Case("constraints-out-is-responses", {}, [*CONS, "--out", "{tmp}/responses.jsonl"],
         ["responses.jsonl", "input"]),
    Case("constraints-out-is-tasks", {}, [*CONS, "--out", "{tmp}/tasks.jsonl"], ["tasks.jsonl", "input"]),
    Case("constraints-out-is-dir", {}, [*CONS, "--out", "{tmp}/outdir"], ["--out", "directory"]),
    Case("constraints-report-dir-is-file", {}, [*CONS, "--report-dir", "{tmp}/afile.txt"],
         ["--report-dir", "afile.txt", "is a file"]),
    Case("winrate-judgments-is-a", {}, [*WIN, "--judgments", "{tmp}/responses.jsonl"],
         ["--judgments", "responses.jsonl", "input"]),
    Case("winrate-judgments-is-tasks", {}, [*WIN, "--judgments", "{tmp}/tasks.jsonl"],
         ["--judgments", "tasks.jsonl", "input"]),
    Case("winrate-judgments-is-dir", {}, [*WIN, "--judgments", "{tmp}/outdir"], ["--judgments", "directory"]),
    Case("policy-out-dir-is-file", {}, [*POL, "--out-dir", "{tmp}/afile.txt"],
         ["--out-dir", "afile.txt", "is a file"]),
    Case("policy-out-dir-is-tasks", {}, [*POL, "--out-dir", "{tmp}/tasks.jsonl"], ["--out-dir", "tasks.jsonl"]),
    # -- counts and sampling settings ------------------------------------------------------------
    *[Case(f"generate{opt}-{v}", {}, [*GEN, opt, v], [opt, bound]) for opt, v, bound in (
        ("--limit", "0", "at least 1"), ("--limit", "-1", "at least 1"), ("--n", "0", "at least 1"),
        ("--batch-size", "0", "at least 1"), ("--max-new-tokens", "-5", "at least 1"),
        ("--temperature", "-1", "at least 0"), ("--top-p", "2", "in (0, 1]"),
        ("--top-p", "0", "in (0, 1]"))],
    *[Case(f"ifeval{opt}-{v}", {}, [*IFE, opt, v], [opt, "at least 1"])
      for opt, v in (("--limit", "0"), ("--max-new-tokens", "0"), ("--batch-size", "0"))],
    Case("constraints-resamples-0", {}, [*CONS, "--resamples", "0"], ["--resamples", "between"]),
    Case("winrate-batch-size-0", {}, [*WIN, "--batch-size", "0"], ["--batch-size", "at least 1"]),
    Case("winrate-resamples-huge", {}, [*WIN, "--resamples", "100000000"], ["--resamples", "between"]),
    *[Case(f"policy{opt}-{v}", {}, [*POL, opt, v], [opt, bound]) for opt, v, bound in (
        ("--n", "0", "at least 1"), ("--limit", "-1", "at least 1"), ("--temperature", "-1", "at least 0"),
        ("--top-p", "2", "in (0, 1]"), ("--top-p", "0", "in (0, 1]"),
        ("--judge-batch-size", "0", "at least 1"))],
    # -- tasks and responses files ---------------------------------------------------------------
    *task_file_cases("generate", GEN),
    *task_file_cases("ifeval", IFE),
    *task_file_cases("constraints", CONS),
    *task_file_cases("winrate", WIN),
    *task_file_cases("policy", POL),
    Case("constraints-responses-utf16", {"r.jsonl": jsonl(RESP).encode("utf-16")},
         [*CONS, "--responses", "{tmp}/r.jsonl"], ["r.jsonl", "UTF-16"]),
    Case("constraints-responses-bad-line", {"r.jsonl": jsonl(RESP, {"id": "t1", "response": 3})},
         [*CONS, "--responses", "{tmp}/r.jsonl"], ["r.jsonl:2", "response"]),
    Case("winrate-b-deep-nesting", {"r.jsonl": jsonl(RESP) + DEEP + "\n"}, [*WIN, "--b", "{tmp}/r.jsonl"],
         ["r.jsonl:2", "nested too deeply"]),
    Case("winrate-a-json-array", {"r.jsonl": json.dumps([RESP])}, [*WIN, "--a", "{tmp}/r.jsonl"],
         ["r.jsonl:1", "JSON array"]),
    # -- model and judge specs: the accepted forms, before any model loads -------------------
    Case("generate-model-missing", {}, [*GEN, "--model", "{tmp}/nomodel"], ["nomodel", "Accepted forms"]),
    Case("ifeval-model-missing", {}, [*IFE, "--model", "{tmp}/nomodel"], ["nomodel", "Accepted forms"]),
    Case("policy-trained-missing", {}, [*POL, "--trained", "{tmp}/nomodel"], ["nomodel", "Accepted forms"]),
    Case("policy-judge-bogus", {}, [*POL, "--judge", "bogus:x"], ["bogus:x", "Accepted forms"]),
    Case("policy-judge-max-new-tokens-0", {}, [*POL, "--judge-max-new-tokens", "0"],
         ["--judge-max-new-tokens must be at least 1"]),
    Case("winrate-judge-bogus", {}, [*WIN, "--judge", "baseline:longest"], ["baseline:longest", "Accepted forms"]),
    Case("winrate-judge-genrm-missing", {}, [*WIN, "--judge", "genrm:local:{tmp}/nomodel"],
         ["nomodel", "Accepted forms"]),
    Case("winrate-judge-scalar-missing", {}, [*WIN, "--judge", "scalar:{tmp}/norm"], ["norm", "Accepted forms"]),
    Case("winrate-judge-backend-bogus", {}, [*WIN, "--judge", "genrm:gpt4"], ["gpt4", "accepted forms"]),
    # -- serve-reward --config -------------------------------------------------------------------
    Case("serve-reward-config-latin1", {"c.yaml": "# café\ngroup:\n  size: 4\n".encode("latin-1")}, SR,
         ["c.yaml", "not valid UTF-8"]),
    Case("serve-reward-config-utf16", {"c.yaml": "group:\n  size: 4\n".encode("utf-16")}, SR,
         ["c.yaml", "UTF-16"]),
    Case("serve-reward-config-empty", {"c.yaml": "# nothing\n"}, SR, ["c.yaml", "empty"]),
    Case("serve-reward-config-wrong-type", {"c.yaml": "group:\n  size: many\n"}, SR, ["c.yaml", "size"]),
    Case("serve-reward-config-bool-for-int", {"c.yaml": "group:\n  size: true\n"}, SR, ["c.yaml", "size"]),
    Case("serve-reward-config-unknown-key", {"c.yaml": "grup:\n  size: 4\n"}, SR, ["c.yaml", "grup"]),
    Case("serve-reward-config-not-mapping", {"c.yaml": "- 1\n- 2\n"}, SR, ["c.yaml", "mapping"]),
    Case("serve-reward-config-deep", {"c.yaml": "a: " + "[" * 50_000 + "]" * 50_000 + "\n"}, SR,
         ["c.yaml", "not valid YAML"]),
]

CASES = [
    # -- output paths: a directory, a path under a file, one of the command's inputs --------
    Case("verify-out-is-dir", {}, ["verify", "{tmp}/tasks.jsonl", "{tmp}/responses.jsonl",
                                   "--out", "{tmp}/outdir"], ["--out", "outdir", "directory"]),
    Case("verify-out-is-tasks", {}, ["verify", "{tmp}/tasks.jsonl", "{tmp}/responses.jsonl",
                                     "--out", "{tmp}/tasks.jsonl"], ["tasks.jsonl", "input"]),
    Case("verify-out-is-responses", {}, ["verify", "{tmp}/tasks.jsonl", "{tmp}/responses.jsonl",
                                         "--out", "{tmp}/responses.jsonl"], ["responses.jsonl", "input"]),
    Case("verify-out-under-a-file", {}, ["verify", "{tmp}/tasks.jsonl", "{tmp}/responses.jsonl",
                                         "--out", "{tmp}/afile.txt/x.jsonl"], ["afile.txt", "is a file"]),
    Case("judge-out-is-dir", {}, [*JUDGE, "--out", "{tmp}/outdir"], ["outdir", "directory"]),
    Case("judge-out-is-pairs", {}, [*JUDGE, "--out", "{tmp}/pairs.jsonl"], ["pairs.jsonl", "input"]),
    Case("align-out-is-pairs", {}, [*ALIGN, "--judge", "baseline:length", "--out", "{tmp}/pairs.jsonl"],
         ["pairs.jsonl", "input"]),
    Case("align-out-is-judgments", {}, [*ALIGN, "--judgments", "{tmp}/judgments.jsonl", "--out",
                                        "{tmp}/judgments.jsonl"], ["judgments.jsonl", "input"]),
    Case("align-out-is-dir", {}, [*ALIGN, "--judge", "baseline:length", "--out", "{tmp}/outdir"],
         ["outdir", "directory"]),
    Case("align-report-dir-is-file", {}, [*ALIGN, "--judge", "baseline:length", "--report-dir",
                                          "{tmp}/afile.txt"], ["--report-dir", "afile.txt", "is a file"]),
    Case("distill-out-is-pairs", {}, ["distill", "--pairs", "{tmp}/pairs.jsonl", "--teacher",
                                      "genrm:local:x", "--out", "{tmp}/pairs.jsonl"], ["pairs.jsonl", "input"]),
    Case("distill-out-is-dir", {}, ["distill", "--pairs", "{tmp}/pairs.jsonl", "--teacher",
                                    "genrm:local:x", "--out", "{tmp}/outdir"], ["outdir", "directory"]),
    Case("import-out-is-dir", {}, ["data", "import", "storyer", "--out", "{tmp}/outdir"],
         ["outdir", "directory"]),
    Case("augment-out-is-in", {}, ["data", "augment-constraints", "--in", "{tmp}/pairs.jsonl",
                                   "--out", "{tmp}/pairs.jsonl"], ["pairs.jsonl", "input"]),
    Case("train-output-dir-is-file", {"c.yaml": policy_yaml()},
         ["train", "policy", "--config", "{tmp}/c.yaml", "--output-dir", "{tmp}/afile.txt"],
         ["output_dir", "afile.txt", "is a file"]),
    Case("train-output-dir-is-config", {"c.yaml": policy_yaml()},
         ["train", "policy", "--config", "{tmp}/c.yaml", "--output-dir", "{tmp}/c.yaml"],
         ["output_dir", "c.yaml"]),
    Case("report-run-dir-missing", {}, ["report", "{tmp}/norun"], ["norun", "no such run directory"]),
    Case("report-metrics-is-dir", {"run/metrics.jsonl": None}, ["report", "{tmp}/run"],
         ["metrics.jsonl", "is not a file"]),
    # -- encodings -------------------------------------------------------------------------------
    Case("config-utf16", {"c.yaml": policy_yaml().encode("utf-16")},
         ["train", "policy", "--config", "{tmp}/c.yaml"], ["c.yaml", "UTF-8", "UTF-16"]),
    Case("config-latin1", {"c.yaml": ("# café\n" + policy_yaml()).encode("latin-1")},
         ["train", "policy", "--config", "{tmp}/c.yaml"], ["c.yaml", "not valid UTF-8 at byte 6"]),
    Case("tasks-latin1-line", {"t.jsonl": jsonl(TASK).encode() + '{"id": "é"}\n'.encode("latin-1")},
         ["data", "check", "{tmp}/t.jsonl", "--kind", "tasks"], ["t.jsonl:2", "UTF-8"]),
    Case("pairs-utf16", {"p.jsonl": jsonl(PAIR).encode("utf-16")},
         ["judge", "--pairs", "{tmp}/p.jsonl", "--judge", "baseline:length", "--out", "{tmp}/o.jsonl"],
         ["p.jsonl", "UTF-16"]),
    Case("report-latin1-line", {"run/metrics.jsonl": b'{"step": 1, "note": "\xe9"}\n{"step": 2}\n'},
         ["report", "{tmp}/run"], ["metrics.jsonl:1", "UTF-8"]),
    Case("import-wq-latin1", {WQ: b'[{"paragraph1": "caf\xe9"}]'}, [*IMPORT[:2], "wq-style-mimic", *IMPORT[2:]],
         ["wq_style_mimic.jsonl", "UTF-8"]),
    # -- deep nesting ----------------------------------------------------------------------------
    Case("pairs-deep-nesting", {"p.jsonl": jsonl(PAIR) + DEEP + "\n"},
         ["data", "check", "{tmp}/p.jsonl", "--kind", "pairs"], ["p.jsonl:2", "nested too deeply"]),
    Case("judgments-deep-nesting", {"j.jsonl": jsonl(JUDGMENT) + DEEP + "\n"},
         [*ALIGN, "--judgments", "{tmp}/j.jsonl"], ["j.jsonl:2", "nested too deeply"]),
    Case("config-deep-nesting", {"c.yaml": "a: " + "[" * 50_000 + "]" * 50_000 + "\n"},
         ["train", "policy", "--config", "{tmp}/c.yaml"], ["c.yaml", "not valid YAML"]),
    Case("import-wqrm-deep", {WQRM: DEEP}, [*IMPORT[:2], "wqrm", *IMPORT[2:]],
         ["wqrm_annotations.json", "nested too deeply"]),
    # -- eval alignment --resamples --------------------------------------------------------------
    *[Case(f"resamples-{n}", {}, [*ALIGN, "--judge", "baseline:length", "--resamples", n],
           ["--resamples", "between"]) for n in ("0", "-1", "100000000")],
    # -- judgments files -------------------------------------------------------------------------
    Case("judgments-empty", {"j.jsonl": ""}, [*ALIGN, "--judgments", "{tmp}/j.jsonl"],
         ["j.jsonl", "no judgments"]),
    Case("judgments-is-pairs", {}, [*ALIGN, "--judgments", "{tmp}/pairs.jsonl"],
         ["pairs.jsonl:1", "missing required field", "judge"]),
    Case("judgments-p-chosen-string", {"j.jsonl": jsonl({**JUDGMENT, "p_chosen": "high"})},
         [*ALIGN, "--judgments", "{tmp}/j.jsonl"], ["j.jsonl:1", "p_chosen"]),
    Case("judgments-p-chosen-7.5", {"j.jsonl": jsonl({**JUDGMENT, "p_chosen": 7.5})},
         [*ALIGN, "--judgments", "{tmp}/j.jsonl"], ["j.jsonl:1", "p_chosen", "less than or equal to 1"]),
    Case("judgments-conflicting-duplicate", {"j.jsonl": jsonl(JUDGMENT, {**JUDGMENT, "p_chosen": 0.0})},
         [*ALIGN, "--judgments", "{tmp}/j.jsonl"], ["j.jsonl:2", "duplicate id 'p1", "first on line 1"]),
    Case("judgments-duplicate-across-files", {"j2.jsonl": jsonl({**JUDGMENT, "p_chosen": 0.0})},
         [*ALIGN, "--judgments", "{tmp}/judgments.jsonl", "--judgments", "{tmp}/j2.jsonl"],
         ["j2.jsonl", "judgments.jsonl too", "'p1'"]),
    # -- report ----------------------------------------------------------------------------------
    Case("report-non-object-line", {"run/metrics.jsonl": jsonl({"step": 1}, "[1, 2]", {"step": 3})},
         ["report", "{tmp}/run"], ["metrics.jsonl:2", "not a JSON object"]),
    Case("report-bad-middle-line", {"run/metrics.jsonl": jsonl({"step": 1}, "{oops", {"step": 3})},
         ["report", "{tmp}/run"], ["metrics.jsonl:2", "not valid JSON"]),
    # -- data import -----------------------------------------------------------------------------
    Case("import-wqrm-broken-json", {WQRM: '[{"id": 1,'}, [*IMPORT[:2], "wqrm", *IMPORT[2:]],
         ["wqrm_annotations.json", "not valid JSON", "line 1"]),
    Case("import-wqrm-wrong-top-level", {WQRM: '{"id": 1}'}, [*IMPORT[:2], "wqrm", *IMPORT[2:]],
         ["wqrm_annotations.json", "must be a JSON array, got a JSON object"]),
    Case("import-eqbench-wrong-top-level", {EQB: '[1, 2]'}, [*IMPORT[:2], "eqbench", *IMPORT[2:]],
         ["creative_writing_prompts_v3.json", "must be a JSON object, got a JSON array"]),
    # -- limits and options that do not apply ----------------------------------------------------
    Case("judge-limit-0", {}, [*JUDGE, "--out", "{tmp}/o.jsonl", "--limit", "0"], ["--limit", "at least 1"]),
    Case("align-limit-negative", {}, [*ALIGN, "--judge", "baseline:length", "--limit", "-3"],
         ["--limit", "at least 1"]),
    Case("distill-limit-0", {}, ["distill", "--pairs", "{tmp}/pairs.jsonl", "--teacher", "genrm:local:x",
                                 "--out", "{tmp}/o.jsonl", "--limit", "0"], ["--limit", "at least 1"]),
    Case("augment-limit-0", {}, ["data", "augment-constraints", "--in", "{tmp}/pairs.jsonl", "--out",
                                 "{tmp}/o.jsonl", "--limit", "0"], ["--limit", "at least 1"]),
    Case("judge-mode-bogus", {}, [*JUDGE, "--out", "{tmp}/o.jsonl", "--mode", "bogus"], ["--mode", "bogus"]),
    Case("judge-dtype-float8", {}, [*JUDGE, "--out", "{tmp}/o.jsonl", "--dtype", "float8"],
         ["--dtype", "float8"]),
    Case("judge-device-tpu", {}, [*JUDGE, "--out", "{tmp}/o.jsonl", "--device", "tpu"], ["--device", "tpu"]),
    Case("judge-device-for-baseline", {}, [*JUDGE, "--out", "{tmp}/o.jsonl", "--device", "cpu"],
         ["--device", "applies only to local GenRM"]),
    Case("judge-timeout-for-local", {}, ["judge", "--pairs", "{tmp}/pairs.jsonl", "--judge", "genrm:local:x",
                                         "--out", "{tmp}/o.jsonl", "--timeout", "5"],
         ["--timeout", "applies only to OpenAI-compatible"]),
    Case("judge-attempts-0", {}, [*JUDGE, "--out", "{tmp}/o.jsonl", "--attempts", "0"], ["--attempts"]),
    Case("align-swap-without-genrm", {}, [*ALIGN, "--judgments", "{tmp}/judgments.jsonl", "--swap"],
         ["--swap", "applies only to GenRM"]),
    # -- data check and JSONL shape --------------------------------------------------------------
    Case("check-empty-file", {"e.jsonl": ""}, ["data", "check", "{tmp}/e.jsonl", "--kind", "tasks"],
         ["e.jsonl", "no valid tasks (the file is empty)"]),
    Case("check-all-skipped", {"b.jsonl": jsonl({"id": "x"}, "nope")},
         ["data", "check", "{tmp}/b.jsonl", "--kind", "pairs", "--skip-invalid"],
         ["b.jsonl", "all 2 lines were skipped"]),
    Case("check-json-array", {"a.jsonl": json.dumps([PAIR, PAIR2], indent=1)},
         ["data", "check", "{tmp}/a.jsonl", "--kind", "pairs"], ["a.jsonl:1", "JSON array", "jq -c"]),
    Case("check-json-array-one-line", {"a.jsonl": json.dumps([PAIR, PAIR2]) + "\n"},
         ["data", "check", "{tmp}/a.jsonl", "--kind", "pairs", "--skip-invalid"], ["a.jsonl:1", "JSON array"]),
    Case("verify-bad-response-line", {"r.jsonl": jsonl({"id": "t1", "response": 3})},
         ["verify", "{tmp}/tasks.jsonl", "{tmp}/r.jsonl"], ["r.jsonl:1", "response"]),
    # -- train: config, data checked before any weights load ----------------------------------
    Case("train-no-config", {}, ["train", "policy"], ["--config"]),
    Case("train-empty-yaml", {"c.yaml": "# nothing\n"}, ["train", "genrm-sft", "--config", "{tmp}/c.yaml"],
         ["c.yaml", "empty"]),
    Case("train-max-steps-true", {"c.yaml": policy_yaml(max_steps="true")},
         ["train", "policy", "--config", "{tmp}/c.yaml"], ["c.yaml", "max_steps", "boolean"]),
    Case("train-max-steps-string", {"c.yaml": policy_yaml(max_steps='"20"')},
         ["train", "policy", "--config", "{tmp}/c.yaml"], ["c.yaml", "max_steps", "string"]),
    Case("train-duplicate-key", {"c.yaml": policy_yaml(seed="1\nseed: 2")},
         ["train", "policy", "--config", "{tmp}/c.yaml"], ["c.yaml", "'seed' is given twice"]),
    Case("train-tasks-missing", {"c.yaml": policy_yaml().replace("tasks.jsonl", "gone.jsonl")},
         ["train", "policy", "--config", "{tmp}/c.yaml"], ["gone.jsonl", "file not found"]),
    Case("train-tasks-bad-line", {"c.yaml": policy_yaml(), "tasks.jsonl": jsonl(TASK, {"id": "z"})},
         ["train", "policy", "--config", "{tmp}/c.yaml"], ["tasks.jsonl:2", "prompt"]),
    Case("train-free-text-without-verifier", {"c.yaml": policy_yaml(), "tasks.jsonl": jsonl(TASK, FREE_TASK)},
         ["train", "policy", "--config", "{tmp}/c.yaml"], ["tasks.jsonl", "t2", "free_text_verifier"]),
    Case("train-sft-data-bad", {"c.yaml": f"model: {MISSING_MODEL}\ndata: {{tmp}}/pairs.jsonl\n"
                                          "output_dir: {tmp}/run\n"},
         ["train", "genrm-sft", "--config", "{tmp}/c.yaml"], ["pairs.jsonl:1", "messages"]),
    Case("train-bt-pairs-bad", {"c.yaml": f"model: {MISSING_MODEL}\npairs: {{tmp}}/tasks.jsonl\n"
                                          "output_dir: {tmp}/run\n"},
         ["train", "bt-rm", "--config", "{tmp}/c.yaml"], ["tasks.jsonl:1", "chosen"]),
    # -- serve's input ---------------------------------------------------------------------------
    Case("serve-model-missing", {}, ["serve", "--model", "{tmp}/nomodel", "--port", "0"], ["nomodel"]),
    *[Case(f"serve-{opt[2:]}-0", {}, ["serve", "--model", "{tmp}/nomodel", "--port", "0", opt, "0"],
           [opt, "at least 1"]) for opt in ("--batch-size", "--max-tokens", "--max-prompts", "--max-batch")],
    *GENERATION_CASES,
]


def materialise(tmp: Path, files: dict[str, str | bytes | None]) -> None:
    for rel, content in {**BASE, **files}.items():
        path = tmp / rel
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content if isinstance(content, bytes) else content.replace("{tmp}", str(tmp)).encode()
        path.write_bytes(data)


def snapshot(root: Path) -> dict[str, str | None]:
    """Every file (content hash) and directory under ``root``."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file()
                                       else None) for p in sorted(root.rglob("*"))}


def invoke(tmp: Path, args: list[str]):
    return CliRunner().invoke(app, [a.replace("{tmp}", str(tmp)) for a in args])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_clear_error_and_writes_nothing(case: Case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a stray relative write would land in the snapshot too
    monkeypatch.setenv("QUILLRL_HOME", str(tmp_path / "home"))
    materialise(tmp_path, case.files)
    before = snapshot(tmp_path)
    result = invoke(tmp_path, case.args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no raw exception
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")
              or "Error" in line or "Invalid value" in line]
    assert len(errors) == 1, result.stderr
    for name in case.names:
        assert name.replace("{tmp}", str(tmp_path)) in errors[0], (name, errors[0])
    assert snapshot(tmp_path) == before, "the failed command changed files"


# --- not errors: counted, named, reported -------------------------------------------------------

def test_skip_invalid_counts_deep_nesting_and_names_the_line(tmp_path):
    materialise(tmp_path, {"p.jsonl": jsonl(PAIR, DEEP, PAIR2)})
    result = invoke(tmp_path, ["data", "check", "{tmp}/p.jsonl", "--kind", "pairs", "--skip-invalid"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["records"] == 2 and summary["skipped_by_reason"] == {"not valid JSON": 1}
    assert f"{tmp_path}/p.jsonl:2: skipped: not valid JSON: nested too deeply" in result.stderr


RESPONSES_OF = ["verify", "{tmp}/tasks.jsonl", "{tmp}/p.jsonl"]


@pytest.mark.parametrize("verb", [
    [*JUDGE, "--out", "{tmp}/o.jsonl"],
    [*ALIGN, "--judge", "baseline:length", "--resamples", "100"],
    RESPONSES_OF,
    ["eval", "constraints", "--tasks", "{tmp}/tasks.jsonl", "--responses", "{tmp}/p.jsonl"],
    [*WIN[:4], "--a", "{tmp}/p.jsonl", "--b", "{tmp}/p.jsonl", *WIN[-2:], "--resamples", "100"],
], ids=["judge", "eval-alignment", "verify-responses", "eval-constraints", "eval-winrate"])
def test_skip_invalid_means_the_same_on_every_verb(verb, tmp_path):
    """A bad line is listed as file:line: skipped: reason, counted, and the run goes on."""
    bad_line = {"id": "p9", "prompt": "x"}  # a pair without chosen/rejected; a response without one
    pairs = jsonl(PAIR, bad_line, PAIR2) if "--pairs" in verb else jsonl(
        {"id": "t1", "response": "ok"}, bad_line)
    materialise(tmp_path, {"pairs.jsonl": pairs, "p.jsonl": pairs})
    strict = invoke(tmp_path, verb)
    assert strict.exit_code == 2 and ":2:" in strict.stderr
    result = invoke(tmp_path, [*verb, "--skip-invalid"])
    assert result.exit_code == 0, result.output
    assert ".jsonl:2: skipped: missing required field" in result.stderr


def test_skip_invalid_task_lines_are_listed_and_the_rest_generated(tiny_model_dir, tmp_path):
    """generate (and every verb reading tasks through it) lists a bad task line by number and
    reason, counts it, and generates for the others."""
    materialise(tmp_path, {"t.jsonl": jsonl(TASK, {"id": "z"}, FREE_TASK)})
    args = ["generate", "--model", str(tiny_model_dir), "--tasks", "{tmp}/t.jsonl", "--out",
            "{tmp}/o.jsonl", "--max-new-tokens", "2"]
    strict = invoke(tmp_path, args)
    assert strict.exit_code == 2 and "t.jsonl:2" in strict.stderr
    assert not (tmp_path / "o.jsonl").exists()
    result = invoke(tmp_path, [*args, "--skip-invalid"])
    assert result.exit_code == 0, result.output
    assert f"{tmp_path}/t.jsonl:2: skipped: missing required field (field 'prompt')" in result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["n_tasks"] == 2


def test_report_works_around_a_torn_last_line_with_a_warning(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(jsonl({"step": 1, "loss": 1.0, "kl": None, "note": "x"},
                                             {"step": 2, "loss": "nan?", "kl": 0.5})
                                       + '{"step": 3, "lo')
    result = invoke(tmp_path, ["report", "{tmp}/run"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["steps"] == 2
    assert any("metrics.jsonl:3: last line cut off" in w for w in summary["warnings"])
    assert any("'loss': 1 value(s) are not numbers" in w for w in summary["warnings"])
    report = (run / "report.md").read_text()
    assert "| loss | 1 | 1 | 1 | 1 | 1 |" in report  # the numeric step kept, the other counted
    assert "| kl | 0.5 |" in report and "warning: " in report


# --- faults -------------------------------------------------------------------------------------

def test_a_server_that_never_answers_fails_in_bounded_time_with_retries_shown(tmp_path, monkeypatch):
    """A socket that accepts connections and never replies: the judge gives up after
    --attempts tries of --timeout seconds, exit 2, and the progress bar shows the retries.
    The defaults bound the same failure at about two minutes."""
    import socket
    import threading

    from quillrl.backends import openai_compat as oc

    monkeypatch.setenv("COLUMNS", "200")  # rich's width off a terminal: the whole description shows
    assert oc.DEFAULT_TIMEOUT * oc.DEFAULT_ATTEMPTS + 0.5 * (2 ** (oc.DEFAULT_ATTEMPTS - 1)) <= 130
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))  # a free port picked by the OS
    silent.listen(16)
    held, stop = [], threading.Event()

    def accept_forever():
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])  # keep the connection open, never answer
            except OSError:
                continue

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    try:
        materialise(tmp_path, {})
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        result = invoke(tmp_path, ["judge", "--pairs", "{tmp}/pairs.jsonl", "--judge",
                                   f"genrm:openai:{url}#m", "--mode", "verdict", "--out", "{tmp}/o.jsonl",
                                   "--timeout", "0.5", "--attempts", "2"])
    finally:
        stop.set()
        thread.join(timeout=10)
        for conn in held:
            conn.close()
        silent.close()
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "after 2 attempts" in result.stderr and "timed out" in result.stderr.lower()
    assert "(retries: 2, last: timed out)" in result.stderr  # 2 pairs, 1 retry each: the bar's description, updated on retry
