"""Typed configs: YAML files and CLI overrides validated by the same pydantic classes.

Every stage's config is a :class:`StageConfig` subclass whose fields carry their help text.
``load_config(path, cls, overrides)`` reads YAML, applies ``--set key=value`` style overrides
(dotted keys reach nested sections), and turns validation failures into one
:class:`~quillrl.errors.ConfigError` that names the file, the key, what was wrong and what is
accepted, e.g. ``configs/demo.yaml: 'grpo.lerning_rate' is not a known key; did you mean
'learning_rate'? Accepted: ...``.
"""

from __future__ import annotations

import difflib
import math
import re
import types
import typing
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from .errors import ConfigError

C = TypeVar("C", bound="StageConfig")


class StageConfig(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on load.

    Numbers and booleans are not coerced from other kinds: ``max_steps: true`` or
    ``max_steps: "20"`` is an error (pydantic would read them as 1 and 20), since a value of
    the wrong kind in a config is a mistake to point out, not to guess at.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    @field_validator("*", mode="before")
    @classmethod
    def _no_kind_coercion(cls, value: Any, info: ValidationInfo) -> Any:
        kinds = _scalar_kinds(cls.model_fields[info.field_name].annotation)
        if not kinds:
            return value
        if isinstance(value, bool) and bool not in kinds:
            raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
        if isinstance(value, str) and str not in kinds:
            wanted = "a boolean (true/false)" if kinds == {bool} else "a number"
            raise ValueError(f"expected {wanted}, got the string {value!r} (write it without quotes)")
        return value


def _scalar_kinds(annotation: Any) -> set[type]:
    """The scalar types a field accepts when it accepts nothing but scalars (int, float, bool,
    str, None); empty for any other field, which pydantic checks alone."""
    parts = (typing.get_args(annotation)
             if typing.get_origin(annotation) in (typing.Union, types.UnionType) else (annotation,))
    kinds = {p for p in parts if p is not type(None)}
    if not kinds or not kinds <= {int, float, bool, str} or kinds == {str}:
        return set()
    return kinds


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice (lines {seen[key]} and {line})",
                key_node.start_mark)
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)
# YAML 1.1 (PyYAML) reads 1e-5 as a string, since its float pattern needs a dot; YAML 1.2 and
# every user read it as a number, so this loader does too.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"""),
    list("-+0123456789"))


def yaml_value(text: str) -> Any:
    """One YAML value as configs read it (``--set key=value``)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def _section_model(cls: type[BaseModel], dotted: tuple) -> type[BaseModel] | None:
    model: Any = cls
    for part in dotted:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        model = field.annotation
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _explain(error: dict, cls: type[BaseModel], source: str) -> str:
    loc = tuple(str(x) for x in error["loc"])
    key = ".".join(loc)
    if error["type"] == "extra_forbidden":
        parent = _section_model(cls, tuple(loc[:-1])) or cls
        accepted = sorted(parent.model_fields)
        close = difflib.get_close_matches(loc[-1], accepted, n=1)
        hint = f" did you mean '{close[0]}'?" if close else ""
        return f"{source}: '{key}' is not a known key;{hint} accepted: {', '.join(accepted)}"
    model = _section_model(cls, tuple(loc[:-1])) or cls
    field = getattr(model, "model_fields", {}).get(loc[-1]) if loc else None
    helptext = f" ({field.description})" if field is not None and field.description else ""
    if error["type"] == "value_error":  # our validators' messages say what they got
        return f"{source}: '{key}': {(error.get('ctx') or {}).get('error', error['msg'])}{helptext}"
    got = f"; got {error['input']!r}" if "input" in error and not isinstance(error["input"], dict) else ""
    return f"{source}: '{key}': {error['msg']}{got}{helptext}"


def validate_config(data: dict, cls: type[C], source: str = "config") -> C:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("\n".join(_explain(e, cls, source) for e in exc.errors())) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"grpo.learning_rate=1e-5"`` -> (["grpo", "learning_rate"], 1e-5) with YAML typing."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value (dotted keys for sections)")
    key, raw = text.split("=", 1)
    try:
        return key.strip().split("."), yaml_value(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"override '{text}': the value is not valid YAML: {exc}") from None


def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    for item in overrides or []:
        path, value = parse_override(item)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section")
        node[path[-1]] = value
    return data


def read_yaml(path: Path) -> Any:
    """A YAML file's content; a ConfigError names the file for a missing file, bad encoding,
    bad syntax, a duplicate key or a nesting too deep."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}" if not path.exists()
                          else f"{path}: is a directory, not a config file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        hint = " (it looks like UTF-16)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise ConfigError(f"{path}: not valid UTF-8 at byte {exc.start + 1}{hint}; save it "
                          "as UTF-8") from None
    try:
        return yaml_value(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None


def load_config(path: str | Path | None, cls: type[C], overrides: list[str] | None = None,
                *, require: bool = False) -> C:
    """Read a YAML config (or start from defaults when ``path`` is None) and validate it.

    ``require=True`` (``quillrl train``) refuses a missing path and an empty file: a training
    run started from defaults alone would be a demo the user did not ask for (``serve-reward``
    requires it only of a ``--config`` given: an empty file there is a mistake, not the defaults).
    """
    data: dict = {}
    source = "defaults"
    if path is None and require:
        raise ConfigError("give --config FILE (configs/demo.yaml is the demo job)")
    if path is not None:
        path = Path(path)
        source = str(path)
        loaded = read_yaml(path)
        if loaded is None and require:
            raise ConfigError(f"{path}: the config is empty; write at least the keys to change "
                              "(configs/ holds complete examples, e.g. configs/demo.yaml)")
        loaded = loaded or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
        data = loaded
    return validate_config(apply_overrides(data, overrides), cls, source)


def dump_config(config: BaseModel, path: str | Path) -> None:
    """Write the fully resolved config next to a run's outputs, for reproducibility."""
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))


def at_least(option: str, value: int | float | None, low: int | float,
             high: int | float | None = None) -> None:
    """Refuse a count option outside ``[low, high]`` (None: the option was not given).

    >>> at_least("--limit", 0, 1)
    Traceback (most recent call last):
    quillrl.errors.ConfigError: --limit must be at least 1, got 0
    """
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{option} must be a finite number, got {value}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{option} must be {bound}, got {value}")


def check_choice(option: str, value: str | None, accepted: Iterable[str]) -> None:
    """Refuse an option value outside ``accepted`` (None: the option was not given)."""
    accepted = tuple(accepted)
    if value is not None and value not in accepted:
        raise ConfigError(f"{option} must be one of {', '.join(accepted)}; got {value!r}")
