"""Configs are frozen dataclasses; presets are named instances; ``--set key=value`` overrides are parsed
against the dataclass's field types, so an unknown key or a badly typed value fails before training starts."""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, TypeVar

from geneval.errors import GenevalInputError

C = TypeVar("C")


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["lr=2e-4", "sn=true"]`` → ``{"lr": "2e-4", "sn": "true"}``; ``key=value`` is required."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise GenevalInputError(f"--set {pair!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


def apply_overrides(config: C, overrides: dict[str, Any], *, what: str = "config") -> C:
    """A copy of the dataclass ``config`` with ``overrides`` (strings are parsed by the field's type)."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    changes = {}
    for key, value in overrides.items():
        if key not in fields:
            raise GenevalInputError(f"{what}: unknown key {key!r}; known keys: {', '.join(sorted(fields))}")
        changes[key] = coerce(value, hints[key], what=f"{what} key {key!r}") if isinstance(value, str) else value
    updated = dataclasses.replace(config, **changes)
    validate = getattr(updated, "validate", None)
    if callable(validate):
        validate()
    return updated


def coerce(text: str, hint, *, what: str):
    """Parse ``text`` as ``hint`` (bool, int, float, str, Optional[...], tuple[...]/list[...] as JSON or commas)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", typing.Union)):
        if text.lower() in ("none", "null", ""):
            if type(None) in args:
                return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(text, arg, what=what)
            except GenevalInputError:
                continue
        raise GenevalInputError(f"{what}: cannot parse {text!r} as {hint}")
    if hint is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise GenevalInputError(f"{what}: {text!r} is not a boolean; expected true or false")
    if hint in (int, float):
        try:
            return hint(text)
        except ValueError:
            raise GenevalInputError(f"{what}: {text!r} is not a{'n' if hint is int else ''} {hint.__name__}") from None
    if hint is str:
        return text
    if origin in (tuple, list):
        items = json.loads(text) if text.startswith("[") else [t for t in text.split(",") if t.strip()]
        inner = args[0] if args else str
        parsed = [coerce(str(item).strip(), inner, what=what) for item in items]
        return tuple(parsed) if origin is tuple else parsed
    raise GenevalInputError(f"{what}: values of type {hint} cannot be set from the command line")


def config_dict(config) -> dict:
    from geneval.family import config_dict as canonical  # one definition: ``added_field``s at default left out

    return canonical(config)
