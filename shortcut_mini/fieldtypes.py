"""Reading a value as the type a dataclass field declares.

Command-line flags and ``--set KEY=VALUE`` give text; YAML and JSON files give loosely typed values
(PyYAML reads ``lr: 1e-3`` as the *string* ``"1e-3"``, since YAML 1.1 floats need a dot). One
function, :func:`coerce`, turns either into the declared type: ``int``, ``float``, ``bool``, ``str``,
``X | None``, ``tuple[X, Y]`` and ``dict``. :func:`matches` says whether a value already has it.
This module imports nothing heavy.
"""

from __future__ import annotations

import json
import types
import typing

__all__ = ["coerce", "matches", "describe"]

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_NONE = ("none", "null")


def _args(hint) -> tuple:
    return typing.get_args(hint)


def _is_optional(hint) -> bool:
    return _is_union(hint) and type(None) in _args(hint)


def _is_union(hint) -> bool:
    return isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union


def describe(hint) -> str:
    """The type in words: ``a number``, ``an integer or none``, ``a pair of numbers``..."""
    if _is_union(hint):
        words = [describe(a) for a in _args(hint) if a is not type(None)]
        return " or ".join(words) + (" or none" if _is_optional(hint) else "")
    if typing.get_origin(hint) is tuple:
        inner = {describe(a) for a in _args(hint)}
        if len(inner) == 1 and len(_args(hint)) == 2:
            return "a pair of " + inner.pop().removeprefix("a ").removeprefix("an ") + "s"
        return f"a list of {len(_args(hint))} values"
    return {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "text",
        dict: "a JSON object",
    }.get(hint, getattr(hint, "__name__", str(hint)))


def matches(value, hint) -> bool:
    """True if ``value`` already has the type ``hint`` (an ``int`` counts as a ``float``)."""
    if _is_union(hint):
        return any(matches(value, a) for a in _args(hint))
    if hint is type(None):
        return value is None
    if typing.get_origin(hint) is tuple:
        args = _args(hint)
        return (
            isinstance(value, tuple)
            and len(value) == len(args)
            and all(matches(v, a) for v, a in zip(value, args))
        )
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, typing.get_origin(hint) or hint)


def coerce(value, hint):
    """``value`` (text or a loosely typed value) as type ``hint``; ``ValueError`` if it is not one.

    Text ``none`` / ``null`` is None for optional fields; ``true/false/yes/no/on/off/1/0`` for
    booleans; integers accept integral numbers (``1e3``); pairs accept JSON (``[0.9, 0.99]``) or
    ``0.9,0.99``; dicts accept JSON objects.
    """
    if _is_optional(hint):
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE):
            return None
        rest = [a for a in _args(hint) if a is not type(None)]
        if len(rest) != 1:
            raise TypeError(f"cannot read a value of type {hint!r} (one type or None only)")
        return coerce(value, rest[0])
    if typing.get_origin(hint) is tuple:
        return _coerce_tuple(value, _args(hint))
    caster = _CASTERS.get(typing.get_origin(hint) or hint)
    if caster is None:
        raise TypeError(f"cannot read a value of type {hint!r}")
    out = caster(value)
    if out is _FAIL:
        raise ValueError(f"{value!r} is not {describe(hint)}")
    return out


_FAIL = object()


def _to_bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    return _FAIL


def _to_int(value):
    if isinstance(value, bool):
        return _FAIL
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            value = _to_float(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return _FAIL


def _to_float(value):
    if isinstance(value, bool):
        return _FAIL
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return _FAIL
    return _FAIL


def _to_str(value):
    return value if isinstance(value, str) else _FAIL


def _to_dict(value):
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return _FAIL
    return dict(value) if isinstance(value, dict) else _FAIL


_CASTERS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str, dict: _to_dict}


def _coerce_tuple(value, args: tuple):
    hint = tuple[args]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = [v for v in value.strip("()[] ").split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or len(value) != len(args):
        raise ValueError(f"{value!r} is not {describe(hint)}")
    try:
        return tuple(coerce(v, a) for v, a in zip(value, args))
    except ValueError:
        raise ValueError(f"{value!r} is not {describe(hint)}") from None
