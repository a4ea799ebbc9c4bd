"""The package layering (docs/design.md, "Layout"): no module imports from a layer above its own,
packages of the top group do not import each other, and the only import cycles are the two
registries'. Read from the source with ``ast``: nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import quillrl

ROOT = Path(quillrl.__file__).parent

# package (or top-level module) -> layer, low to high; a module may import its own layer or below.
# The pipeline's order (issue #22): data -> constraints -> backends -> judges -> scoring. data
# reads a task's constraints for their shape (data.records.ConstraintRecord); constraints/ checks
# them against the registry as tasks are read (constraints.read_tasks).
LAYERS = {
    "errors": 0, "config": 0, "home": 0, "plotting": 0, "rewards": 0, "httpserve": 0, "resources": 0,
    "cpu_threads": 0,
    "data": 1, "constraints": 2, "models": 3, "backends": 3, "judges": 4, "scoring": 5,
    "eval": 6, "train": 6, "serving": 6, "integrations": 6, "distill": 6, "cli": 7,
    "testing": 8,
}
TOP_GROUP = 6  # same-layer packages here are siblings: none imports another
# Cycles allowed: a registry and the modules it lists import each other (lazily, by design).
REGISTRY_CYCLES = ("quillrl.constraints", "quillrl.data")


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = ["quillrl", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, top_level_only: bool) -> set[str]:
    """The quillrl modules ``name`` imports (``from X import y`` counts X and X.y)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    targets = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            for base in _imports_of(node, name, path):
                targets.add(base)
                targets.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            targets.update(a.name for a in node.names if a.name.startswith("quillrl"))
    return targets


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer_violations() -> list[str]:
    """Every import, at any depth of a module, into a higher layer or a sibling of the top group."""
    bad = set()
    for name, path in _modules().items():
        here = _top(name)
        for target in _imports(name, path, top_level_only=False):
            there = _top(target)
            if not here or not there or here == there:
                continue
            assert here in LAYERS and there in LAYERS, f"add {here!r}/{there!r} to LAYERS"
            if LAYERS[there] > LAYERS[here] or (LAYERS[there] == LAYERS[here] >= TOP_GROUP):
                bad.add(f"{name} -> {'.'.join(target.split('.')[:3])}")
    return sorted(bad)


def import_cycles() -> list[list[str]]:
    """Strongly connected components (Tarjan) of the module-level import graph, size > 1."""
    modules = _modules()
    graph = {m: sorted(t for t in _imports(m, p, top_level_only=True) if t in modules and t != m)
             for m, p in modules.items()}
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_package_has_a_layer():
    assert {_top(m) for m in _modules()} - {""} <= set(LAYERS)


def test_no_import_goes_up_or_sideways():
    assert layer_violations() == []


def test_only_the_registries_import_in_a_cycle():
    stray = [c for c in import_cycles()
             if not any(all(m == r or m.startswith(r + ".") for m in c) for r in REGISTRY_CYCLES)]
    assert stray == []


def test_every_import_names_a_module_that_exists():
    """A module moved without its importers updated fails here, not at a lazy import."""
    modules = _modules()
    missing = set()
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                target = next(iter(_imports_of(node, name, path)), None)
                if target and target not in modules:
                    missing.add(f"{name} imports {target}")
    assert sorted(missing) == []


def _imports_of(node: ast.ImportFrom, name: str, path: Path) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    base = node.module or ""
    if node.level:
        parent = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join(parent + ([node.module] if node.module else []))
    return {base} if base.startswith("quillrl") else set()


def test_each_train_verb_is_one_run_module_and_at_most_one_trainer_module():
    """docs/design.md, "Layout": ``train/X_run.py`` is ``quillrl train X`` (its config and its
    run), ``train/X_trainer.py`` the TRL subclass where quillrl has one."""
    train = ROOT / "train"
    runs = {p.stem.removesuffix("_run") for p in train.glob("*_run.py")}
    trainers = {p.stem.removesuffix("_trainer") for p in train.glob("*_trainer.py")}
    assert runs == {"policy", "genrm_sft", "genrm_grpo", "bt_rm"}
    assert trainers and trainers <= runs
    registered = (ROOT / "cli" / "train.py").read_text()
    assert all(f'"..train.{verb}_run"' in registered for verb in runs)
