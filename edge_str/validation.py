"""One merge and one validation pass for every settings dataclass (training config, study grids).

A settings dataclass declares each field with its type hint and, where it has one, its allowed
range or choices through ``setting(...)``::

    hidden: int = setting(100, at_least=1)
    lr: float = setting(1e-2, above=0)
    optimizer: str = setting("adam", choices=("adam", "sgd"))

``build_section`` turns a plain mapping (YAML, JSON, command-line overrides) into the dataclass:
unknown keys, wrong types and values out of range each give one ``SettingError`` line naming the
setting and what it accepts. What YAML naturally gives is accepted as the number it means: an
int where a float is expected, and a numeric string (PyYAML reads ``1e-3`` as a string). A
float is not silently truncated to an integer (``hidden: 3.7`` is refused; ``4.0`` is 4).

``check_settings`` runs the same checks on an instance made in Python (``ModelConfig(...)``), so
the builders and the optimizer refuse what the config loader refuses, with the same line.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edge_str.errors import EdgeStrError

_LIMIT_KEY = "edge_str.limit"


class SettingError(EdgeStrError):
    """A setting with a wrong type or value; ``path`` names it (("model", "hidden"))."""

    def __init__(self, path: tuple[str, ...], detail: str) -> None:
        super().__init__(detail)
        self.path = path
        self.detail = detail


@dataclass(frozen=True)
class Limit:
    """The values a setting accepts beyond its type: a range and/or choices."""

    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    # a tuple, or a function giving one (choices registered elsewhere, e.g. model archs)
    choices: Sequence[Any] | Callable[[], Sequence[Any]] | None = None

    def allowed(self) -> Sequence[Any] | None:
        return self.choices() if callable(self.choices) else self.choices

    def _bounds(self) -> list[tuple[str, float, Callable[[float, float], bool]]]:
        """(words, bound, holds(value, bound)) of each bound set."""
        bounds = (
            ("at least", self.at_least, lambda v, b: v >= b),
            ("greater than", self.above, lambda v, b: v > b),
            ("at most", self.at_most, lambda v, b: v <= b),
            ("less than", self.below, lambda v, b: v < b),
        )
        return [(words, bound, holds) for words, bound, holds in bounds if bound is not None]

    def describe_range(self) -> str:
        if self.at_least is not None and self.at_most is not None:
            return f"from {_num(self.at_least)} to {_num(self.at_most)}"
        return " and ".join(f"{words} {_num(bound)}" for words, bound, _ in self._bounds())

    def violation(self, name: str, value: Any) -> str | None:
        """The one-line complaint about ``value`` (already of the right type), or None."""
        allowed = self.allowed()
        if allowed is not None and value not in allowed:
            return _unknown_choice(name, value, allowed)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not all(holds(value, bound) for _, bound, holds in self._bounds()):
            return f"{name} must be {self.describe_range()}, got {value!r}"
        return None


def setting(
    default: Any = dataclasses.MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
    choices: Sequence[Any] | Callable[[], Sequence[Any]] | None = None,
) -> Any:
    """A dataclass field with its allowed values (see the module docstring)."""
    limit = Limit(at_least, above, at_most, below, choices)
    metadata = {_LIMIT_KEY: limit}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``, nested mappings merged key by key."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def drop_none(tree: dict[str, Any]) -> dict[str, Any]:
    """``tree`` without its None leaves (unset command-line flags) and the mappings left empty."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            value = drop_none(value)
            if value:
                out[key] = value
        elif value is not None:
            out[key] = value
    return out


def given_paths(tree: dict[str, Any], prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """The paths of the leaves set (not None) in a nested mapping."""
    paths: set[tuple[str, ...]] = set()
    for key, value in tree.items():
        if isinstance(value, dict):
            paths |= given_paths(value, (*prefix, str(key)))
        elif value is not None:
            paths.add((*prefix, str(key)))
    return paths


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def build_section(cls: type, raw: Any, path: tuple[str, ...] = ()) -> Any:
    """``cls`` from the mapping ``raw``, every value checked; raises ``SettingError``."""
    label = f"{'.'.join(path)}: " if path else ""
    if not isinstance(raw, dict):
        raise SettingError(path, f"{label}expected a mapping, got {raw!r}")
    unknown = sorted(str(key) for key in set(raw) - field_names(cls))
    if unknown:
        raise SettingError(path, f"{label}unknown setting(s) {', '.join(unknown)}")
    hints, declared = _hints(cls), {f.name: f for f in dataclasses.fields(cls)}
    # Checked before the dataclass sees them, so its own __post_init__ gets the right types.
    values = {
        name: _coerce(".".join((*path, name)), hints[name], value, declared[name].metadata)
        for name, value in raw.items()
    }
    return cls(**values)


def check_settings(instance: Any, path: tuple[str, ...] = ()) -> None:
    """Coerce and check every field of the dataclass ``instance`` in place."""
    hints = _hints(type(instance))
    for f in dataclasses.fields(instance):
        name = ".".join((*path, f.name))
        value = _coerce(name, hints[f.name], getattr(instance, f.name), f.metadata)
        setattr(instance, f.name, value)


def _coerce(name: str, hint: Any, value: Any, metadata: Any) -> Any:
    limit: Limit = metadata.get(_LIMIT_KEY, Limit())
    converted = _convert(hint, value)
    if converted is _INVALID:
        raise SettingError(tuple(name.split(".")), _type_complaint(name, hint, value, limit))
    for item in converted if isinstance(converted, list) else [converted]:
        if item is None or isinstance(item, list):
            continue
        complaint = limit.violation(name, item)
        if complaint:
            raise SettingError(tuple(name.split(".")), complaint)
    return converted


_INVALID = object()


def _convert(hint: Any, value: Any) -> Any:
    """``value`` as the type ``hint`` names, or ``_INVALID``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None:
            return None if type(None) in options else _INVALID
        for option in options:
            if option is not type(None):
                converted = _convert(option, value)
                if converted is not _INVALID:
                    return converted
        return _INVALID
    if origin is list:
        (item_hint,) = typing.get_args(hint) or (Any,)
        if not isinstance(value, list | tuple):
            return _INVALID
        items = [_convert(item_hint, item) for item in value]
        return _INVALID if any(item is _INVALID for item in items) else items
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):  # a section, checked on its own
        return value if isinstance(value, hint) else _INVALID
    if hint is bool:
        return value if isinstance(value, bool) else _INVALID
    if hint is int:
        number = _number(value)
        if number is _INVALID or (isinstance(number, float) and not number.is_integer()):
            return _INVALID
        return int(number)
    if hint is float:
        number = _number(value)
        return _INVALID if number is _INVALID else float(number)
    if hint is str:
        return value if isinstance(value, str) else _INVALID
    raise TypeError(f"no check for settings of type {hint!r}")  # a programming error


def _number(value: Any) -> Any:
    """A finite int or float from a number or a numeric string, else ``_INVALID``."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return _INVALID
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _INVALID
    if isinstance(value, float) and not math.isfinite(value):
        return _INVALID
    return value


def _type_complaint(name: str, hint: Any, value: Any, limit: Limit) -> str:
    allowed = limit.allowed()
    if allowed is not None:
        return _unknown_choice(name, value, allowed)
    kind = _kind(hint)
    bounds = limit.describe_range()
    return f"{name} must be {kind}{f' ({bounds})' if bounds else ''}, got {value!r}"


def _unknown_choice(name: str, value: Any, allowed: Sequence[Any]) -> str:
    leaf = name.rpartition(".")[2]
    where = f" ({name})" if leaf != name else ""
    return f"unknown {leaf} {value!r}; choose from {', '.join(map(str, allowed))}{where}"


def _kind(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        kinds = [_kind(option) for option in typing.get_args(hint) if option is not type(None)]
        return " or ".join(kinds) + (" or null" if type(None) in typing.get_args(hint) else "")
    if origin is list:
        (item_hint,) = typing.get_args(hint) or (Any,)
        return f"a list of {_plural(item_hint)}"
    return {
        bool: "true or false",
        int: "an integer",
        float: "a finite number",
        str: "a string",
    }.get(hint, str(hint))


def _plural(hint: Any) -> str:
    if typing.get_origin(hint) is list:
        (item_hint,) = typing.get_args(hint) or (Any,)
        return f"lists of {_plural(item_hint)}"
    return {bool: "true/false values", int: "integers", float: "finite numbers"}.get(
        hint, "strings" if hint is str else "values"
    )


def _num(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]
