"""Every private TRL name the code touches is in docs/design.md's TRL upgrade checklist.

TRL's private names change without notice between minor versions, so each one we rely on is
listed in the table under "The policy trainer and TRL" and checked on every upgrade. Read from
the source with ``ast``: a private name is touched when a module imports it from ``trl``, reads
it as an attribute of something imported from ``trl``, calls it through ``super()`` in a class
built on a TRL class, overrides a private method of that class, or reads ``self._x`` there
without ever setting it (so the attribute is TRL's)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import quillrl

ROOT = Path(quillrl.__file__).parent
DESIGN = Path(__file__).resolve().parents[1] / "docs" / "design.md"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def touched() -> dict[str, set[str]]:
    """Private TRL names by the module that touches them."""
    found: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text())
        from_trl: dict[str, str] = {}  # local name -> trl module it came from
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "trl":
                for a in node.names:
                    from_trl[a.asname or a.name] = node.module
                    if _private(a.name):
                        found.setdefault(str(path), set()).add(a.name)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "trl":
                        from_trl[(a.asname or a.name).split(".")[0]] = a.name
        if not from_trl:
            continue
        names = found.setdefault(str(path), set())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and _private(node.attr)
                    and isinstance(node.value, ast.Name) and node.value.id in from_trl):
                names.add(node.attr)
            if isinstance(node, ast.ClassDef):
                bases = [b.id for b in node.bases if isinstance(b, ast.Name) and b.id in from_trl]
                if bases:
                    names |= _class_names(node, [getattr(importlib.import_module(from_trl[b]), b)
                                                 for b in bases])
    return {k: v for k, v in found.items() if v}


def _class_names(cls: ast.ClassDef, bases: list[type]) -> set[str]:
    ours = {f.name for f in cls.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    assigned = {n.attr for n in ast.walk(cls) if isinstance(n, ast.Attribute)
                and isinstance(n.ctx, ast.Store) and isinstance(n.value, ast.Name)
                and n.value.id == "self"}
    names = {m for m in ours if _private(m) and any(hasattr(b, m) for b in bases)}  # overrides
    for n in ast.walk(cls):
        if not (isinstance(n, ast.Attribute) and _private(n.attr)):
            continue
        if (isinstance(n.value, ast.Call) and isinstance(n.value.func, ast.Name)
                and n.value.func.id == "super"):
            names.add(n.attr)
        elif (isinstance(n.value, ast.Name) and n.value.id == "self" and n.attr not in ours
              and n.attr not in assigned):
            names.add(n.attr)
    return names


def listed() -> set[str]:
    """The private names in the checklist table (``Class._name`` in its first column)."""
    text = DESIGN.read_text()
    table = text[text.index("The names of TRL"):]
    table = table[:table.index("\n\n", table.index("|---"))]
    return {m for row in table.splitlines() if row.startswith("| `")
            for m in re.findall(r"\.(_[A-Za-z]\w*)", row.split("|")[1])}


def test_every_private_trl_name_in_use_is_in_the_checklist():
    pytest.importorskip("trl")
    used = touched()
    missing = {path: sorted(names - listed()) for path, names in used.items() if names - listed()}
    assert not missing, f"add these to docs/design.md's TRL checklist: {missing}"
    # the check sees what it must: the two overrides and the log record
    assert {"_calculate_rewards", "_tokenize_prompts", "_logs"} <= set().union(*used.values())
