"""cli/ only parses and calls (issue #22, docs/design.md "Layout"): every function body in cli/
fits on a screen, cli/ stays small, and nothing but the CLI's own invocation imports it.
Measured from the source with ``ast``; nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import quillrl

REPO = Path(quillrl.__file__).parents[2]
CLI = Path(quillrl.__file__).parent / "cli"
MAX_BODY = 40
MAX_CLI_LINES = 1500
# What a test or a script may take from quillrl.cli: the command itself, to invoke it.
INVOCATION = {"app", "main"}


def body_lines(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of a function's body, from its first statement after the docstring to its end."""
    body = fn.body
    if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str) and len(body) > 1):
        body = body[1:]
    return body[-1].end_lineno - body[0].lineno + 1


def cli_functions() -> dict[str, int]:
    """``file:function`` -> body lines, for every function (nested ones too) in cli/."""
    out = {}
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out[f"{path.name}:{node.name}:{node.lineno}"] = body_lines(node)
    return out


def library_imports_from_cli(source: str) -> list[tuple[int, str]]:
    """``(line, name)`` of every import from quillrl.cli in ``source`` but the command's."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("quillrl.cli")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("quillrl.cli"):
            names = [f"{node.module}.{a.name}" for a in node.names
                     if node.module != "quillrl.cli" or a.name not in INVOCATION]
        else:
            continue
        bad += [(node.lineno, name) for name in names]
    return sorted(bad)


def cli_importers() -> list[str]:
    """Files outside src/quillrl/cli that import from quillrl.cli anything but the command."""
    bad = []
    for top in ("src", "bench", "tests"):
        for path in sorted((REPO / top).rglob("*.py")):
            if CLI not in path.parents:
                bad += [f"{path.relative_to(REPO)}:{line}: {name}"
                        for line, name in library_imports_from_cli(path.read_text())]
    return bad


def test_body_lines_counts_the_body_only():
    fn = ast.parse('def f(\n    a,\n):\n    """Doc\n    more."""\n    x = 1\n\n    return x\n').body[0]
    assert body_lines(fn) == 3


def test_no_cli_function_body_is_over_40_lines():
    functions = cli_functions()
    assert len(functions) > 20  # the walk found the verbs
    assert {name: n for name, n in functions.items() if n > MAX_BODY} == {}


def test_cli_is_under_1500_lines():
    total = sum(len(p.read_text().splitlines()) for p in CLI.glob("*.py"))
    assert 0 < total < MAX_CLI_LINES, total


def test_nothing_outside_cli_imports_from_it():
    assert cli_importers() == []


def test_the_import_scan_tells_invoking_from_importing():
    source = ("from quillrl.cli import app, main\n"
              "def f():\n    from quillrl.cli.judge import select_pairs\n"
              "import quillrl.cli.eval\nfrom quillrl.cli import print_summary\n")
    assert library_imports_from_cli(source) == [
        (3, "quillrl.cli.judge.select_pairs"), (4, "quillrl.cli.eval"),
        (5, "quillrl.cli.print_summary")]
