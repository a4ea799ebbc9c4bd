"""``quillrl data import``: turn the shared public data sets into our task and pair JSONL files.

Each importer reads its source files as they are (never a copy) and yields records; every line
or item it cannot use is counted under a reason in the ``ImportReport``, which the CLI prints as
its JSON summary. Any data set can then be split by prompt (``split.py``); StoryER's 80/20 split
is the one the README asks for, and the others accept ``--split`` the same way.

The importers themselves live in ``pair_sources.py`` and ``task_sources.py``; this module holds
the registry, the report, and where the data root is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..home import resolve_data_root
from .jsonl import write_jsonl
from .records import PreferencePair, WritingTask
from .split import SPLITS, split_by_group

DEFAULT_SEED = 0
TEST_FRACTION = 0.2


@dataclass
class ImportReport:
    """What an import read, skipped (by reason) and wrote; becomes the CLI's JSON summary."""

    dataset: str
    kind: str
    files: list[str] = field(default_factory=list)
    read: int = 0
    skipped: Counter = field(default_factory=Counter)
    # The first detailed message per skip reason, so a summary shows what the reason means.
    examples: dict[str, str] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def skip(self, reason: str, detail: str | None = None) -> None:
        """Count one source item left out, under a reason short enough to group by."""
        self.skipped[reason] += 1
        if detail and reason not in self.examples:
            # Cut long messages (an unknown constraint id lists every accepted id).
            self.examples[reason] = detail if len(detail) <= 160 else detail[:157] + "..."

    def summary(self, **extra: Any) -> dict[str, Any]:
        return {"dataset": self.dataset, "kind": self.kind, "read": self.read,
                "skipped": sum(self.skipped.values()),
                "skipped_by_reason": dict(sorted(self.skipped.items())),
                **({"skip_examples": self.examples} if self.examples else {}),
                **extra, **self.notes, "files": self.files}


Record = WritingTask | PreferencePair


def parsed_items(report: ImportReport, numbered: Iterable[tuple[int, Any]],
                 parse: Callable[[Any], Any]) -> Iterator[tuple[int, Any]]:
    """``(number, parse(item))`` for each source item ``parse`` accepts, every item counted as
    read; one that is not valid JSON (an Exception from ``json_lines``), or that ``parse``
    answers with a reason (a str), is skipped under that reason."""
    for number, item in numbered:
        report.read += 1
        parsed = "not valid JSON" if isinstance(item, Exception) else parse(item)
        if isinstance(parsed, str):
            report.skip(parsed)
            continue
        yield number, parsed


@dataclass(frozen=True)
class Importer:
    """One importable data set: its name, record kind, and the function that reads it.

    ``read(root, report)`` yields records and counts what it reads and skips in ``report``;
    ``group_of`` gives the key the train/test split keeps together (the prompt by default).
    """

    name: str
    kind: str  # "tasks" or "pairs"
    read: Callable[[Path, ImportReport], Iterable[Record]]
    description: str
    group_of: Callable[[Record], str] = lambda record: record.prompt


IMPORTERS: dict[str, Importer] = {}


def register(importer: Importer) -> Importer:
    IMPORTERS[importer.name] = importer
    return importer


def get_importer(name: str) -> Importer:
    from . import pair_sources, task_sources  # noqa: F401  (importing registers them)

    if name not in IMPORTERS:
        raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(sorted(IMPORTERS))}")
    return IMPORTERS[name]


def importer_names() -> list[str]:
    from . import pair_sources, task_sources  # noqa: F401

    return sorted(IMPORTERS)


def source_file(root: Path, relative: str, report: ImportReport) -> Path:
    """A source file under the data root, recorded in the report; a missing file is an error."""
    path = root / relative
    if not path.is_file():
        raise DataError(f"{relative} not found under the data root {root}", path=str(path))
    report.files.append(relative)
    return path


def _refuse_source_overwrite(out: Path, root: Path, inputs: list[Path]) -> None:
    """Refuse ``--out`` when it is an input of this import or any existing file inside the data
    root: the root holds the raw source files, and importing replaces ``out`` whole."""
    target = out.resolve()
    if any(target == p.resolve() for p in inputs):
        raise DataError("--out is a source file of this import; write the import elsewhere",
                        path=str(out))
    if target.exists() and target.is_relative_to(root.resolve()):
        raise DataError(f"--out is an existing file inside the data root {root}, which holds the "
                        "raw source files; write the import elsewhere", path=str(out))


def _checked(records: list[Record], check: Callable[[Record], Record],
             report: ImportReport) -> Iterator[Record]:
    for record in records:
        try:
            yield check(record)
        except DataError as exc:
            report.skip("invalid constraint", f"{record.id}: {exc}")


def run_import(name: str, out: str | Path, *, split: str = "all", seed: int = DEFAULT_SEED,
               data_root: str | Path | None = None,
               check: Callable[[Record], Record] | None = None) -> dict[str, Any]:
    """Import data set ``name`` into the JSONL file ``out``; returns the summary dict.

    ``check`` (a layer above passes ``quillrl.constraints.check_imported``) sees every record
    before it is written; one it refuses with a ``DataError`` is skipped and counted under
    "invalid constraint", its first message in ``skip_examples``."""
    importer = get_importer(name)
    if split not in SPLITS:
        raise DataError(f"--split must be one of {', '.join(SPLITS)}; got {split!r}")
    root = resolve_data_root(data_root)
    _refuse_source_overwrite(Path(out), root, [])
    report = ImportReport(dataset=name, kind=importer.kind)
    records = list(importer.read(root, report))
    if check is not None:
        records = list(_checked(records, check, report))
    _refuse_source_overwrite(Path(out), root, [root / f for f in report.files])
    chosen = split_by_group(records, importer.group_of, split, seed, TEST_FRACTION)
    written = write_jsonl(out, chosen)
    groups = {importer.group_of(r) for r in chosen}
    return report.summary(records=len(records), split=split, seed=seed,
                          test_fraction=TEST_FRACTION if split != "all" else None,
                          written=written, prompts_written=len(groups), out=str(out))
