"""The results-record schema (``results.schema.json``, JSON Schema draft 2020-12) and its check.

:func:`validate_record` uses the ``jsonschema`` package when it is installed, else a small
built-in validator that understands exactly the keywords the schema uses (``type``, ``required``,
``properties``, ``items``, ``minItems``, ``const``, ``enum``, ``minimum``, ``exclusiveMinimum``,
``minLength``, ``$ref`` into ``$defs``): the GPU machines that run batches may lack ``jsonschema``.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

from ..errors import UserError

__all__ = ["SCHEMA_PATH", "SCHEMA_VERSION", "RecordError", "load_schema", "validate_record"]

SCHEMA_PATH = Path(__file__).with_name("results.schema.json")
SCHEMA_VERSION = 1


class RecordError(UserError, ValueError):
    """A results record does not follow ``results.schema.json``; the message says where."""


@cache
def load_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _errors(value, schema: dict, root: dict, path: str):
    """Yield ``(path, message)`` for every violation (the subset of draft 2020-12 used here)."""
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise NotImplementedError(f"built-in validator: unsupported $ref {ref!r}")
        yield from _errors(value, root["$defs"][ref.split("/")[-1]], root, path)
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](value) for t in types):
            yield path, f"{value!r} is not of type {' or '.join(types)}"
            return
    if "const" in schema and value != schema["const"]:
        yield path, f"{value!r} is not {schema['const']!r}"
    if "enum" in schema and value not in schema["enum"]:
        yield path, f"{value!r} is not one of {schema['enum']}"
    if _TYPES["number"](value):
        if "minimum" in schema and value < schema["minimum"]:
            yield path, f"{value!r} is less than the minimum {schema['minimum']}"
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            yield path, f"{value!r} is not greater than {schema['exclusiveMinimum']}"
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        yield path, f"{value!r} is shorter than {schema['minLength']}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                yield path, f"{key!r} is a required property"
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                yield from _errors(value[key], sub, root, f"{path}/{key}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            yield path, f"needs at least {schema['minItems']} item(s), has {len(value)}"
        if "items" in schema:
            for i, item in enumerate(value):
                yield from _errors(item, schema["items"], root, f"{path}/{i}")


def validate_record(record: dict, *, backend: str = "auto") -> None:
    """Raise :class:`RecordError` if ``record`` does not follow the schema.

    ``backend``: ``"auto"`` (``jsonschema`` if installed, else built-in), ``"jsonschema"`` or
    ``"builtin"``. Besides the schema, non-finite numbers (NaN, inf) are rejected: JSON has none.
    """
    schema = load_schema()
    if backend == "auto":
        try:
            import jsonschema  # noqa: F401

            backend = "jsonschema"
        except ImportError:
            backend = "builtin"
    if backend == "jsonschema":
        import jsonschema

        validator = jsonschema.Draft202012Validator(schema)
        errs = sorted(validator.iter_errors(record), key=lambda e: list(e.absolute_path))
        found = [("/" + "/".join(map(str, e.absolute_path)), e.message) for e in errs]
        found += _nonfinite(record, "")
    elif backend == "builtin":
        found = list(_errors(record, schema, schema, "")) + _nonfinite(record, "")
    else:
        raise ValueError(f"backend must be 'auto', 'jsonschema' or 'builtin', got {backend!r}")
    if found:
        lines = "; ".join(f"{p or '/'}: {m}" for p, m in found[:10])
        raise RecordError(f"results record does not follow {SCHEMA_PATH.name}: {lines}")


def _nonfinite(value, path: str) -> list:
    if isinstance(value, float) and not math.isfinite(value):
        return [(path, f"{value!r} is not a finite number")]
    if isinstance(value, dict):
        return [e for k, v in value.items() for e in _nonfinite(v, f"{path}/{k}")]
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in _nonfinite(v, f"{path}/{i}")]
    return []
