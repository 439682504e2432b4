"""Strict loading of frozen config dataclasses from plain data (parsed YAML).

One loader for every config of the package (training, degradation): an unknown key or a value
of the wrong type is a :class:`ConfigError` that names the key (``train.batch must be an
integer, got 1.5``); nothing is coerced silently but ints to floats and YAML 1.1's ``1e-4``
strings to numbers. ``key=value`` overrides (``--set``) are parsed as YAML by
:func:`apply_overrides` and then go through the same checks. Path fields (``metadata={"path":
True}``) are resolved to absolute paths: :func:`resolve_paths` resolves a file's values against
the file's folder before the overrides (resolved against the current directory) are applied.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import yaml


class ConfigError(ValueError):
    """A config that cannot be used; the message names the key."""


def yaml_error_line(e: yaml.YAMLError) -> str:
    """PyYAML's error in one line: the problem and where (its own message spans several lines
    and quotes the source)."""
    problem = getattr(e, "problem", None) or (str(e).strip().splitlines() or ["invalid"])[0]
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{problem}{where}"


def from_dict(cls: type, data: object, *, base: Path | None = None, where: str = ""):
    """Build dataclass ``cls`` from plain data, strictly (unknown keys and wrong types raise).

    Args:
        base: directory that relative path fields are resolved against (None: left as given).
        where: key prefix for messages, e.g. ``"train."``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where.rstrip('.') or 'config'} must be a mapping of keys, "
                          f"got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            section = f"section {where.rstrip('.')!r}" if where else "the top level"
            raise ConfigError(f"unknown config key '{where}{key}'; known keys in {section}: "
                              f"{', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        value = _coerce(hints[key], value, f"{where}{key}", base)
        if base is not None and fields[key].metadata.get("path"):
            value = _resolve(value, base)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{where.rstrip('.') or 'config'}: {e}") from None


def _coerce(tp: object, value: object, key: str, base: Path | None) -> object:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, {} if value is None else value, base=base, where=f"{key}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key, base)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key} must be one of {', '.join(map(repr, args))}, "
                              f"got {value!r}")
        return value
    if origin is tuple:
        variadic = len(args) == 2 and args[1] is Ellipsis
        if variadic and value is not None and not isinstance(value, list | tuple | Mapping):
            value = [value]  # one value of a list: `--set data.hq=hq.txt`
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        items = args[:1] * len(value) if variadic else args
        if len(items) != len(value):
            raise ConfigError(f"{key} must be a list of {len(items)} values, got {value!r}")
        return tuple(_coerce(t, v, f"{key}[{i}]", base)
                     for i, (t, v) in enumerate(zip(items, value, strict=True)))
    if tp is dict:
        if value is None:  # an empty YAML mapping (`degrade:`)
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return value
    raise TypeError(f"{key}: unsupported config type {tp}")  # a bug in the dataclasses


def resolve_paths(cls: type, data: object, base: Path) -> object:
    """A copy of plain ``data`` for dataclass ``cls`` whose path fields (strings, or lists of
    strings) are made absolute against ``base``; everything else, and values of the wrong type,
    are left for :func:`from_dict` to check."""
    if not isinstance(data, Mapping):
        return data
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    out = dict(data)
    for key, value in data.items():
        if key not in fields:
            continue
        if dataclasses.is_dataclass(hints[key]):
            out[key] = resolve_paths(hints[key], value, base)
        elif fields[key].metadata.get("path"):
            if isinstance(value, str):
                out[key] = _resolve(value, base)
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                out[key] = [_resolve(v, base) for v in value]
    return out


def _resolve(value: object, base: Path) -> object:
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(_resolve(v, base) for v in value)
    p = Path(str(value)).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """Set ``section.key=value`` items (values parsed as YAML) in a nested dict (a copy)."""
    out = _deepcopy(data)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not key=value (e.g. train.batch=8)")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: value is not valid YAML "
                              f"({yaml_error_line(e)})") from None
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(parts[:i + 1])} is not a "
                                  "section")
            node = child
        node[parts[-1]] = value
    return out


def _deepcopy(d: object) -> object:
    return {k: _deepcopy(v) for k, v in d.items()} if isinstance(d, Mapping) else d
