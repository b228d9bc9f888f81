"""JSON-like values (REST bodies, keypoint files, keyword arguments) as the Python values of option fields, with no
coercion between JSON types: booleans must be booleans, integers integers (2.0 is 2, as JSON Schema's ``integer``
says), ``size`` two numbers. ``typed`` raises ``InvalidInput`` naming the field; ``service.core.options`` uses it
for every option type it declares."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Final

from numpy import bool_ as np_bool

from service.errors import InvalidInput

TYPE_WORDS: Final = {
    "str": "a string",
    "bool": "true or false",
    "int": "an integer",
    "number": "a number",
    "size": "[width, height], two numbers",
}


def as_float(value: object) -> float | None:
    """A number (JSON's, or numpy's) as a float; None for anything else, a boolean, or an integer too large for
    a float."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool | np_bool):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def as_int(value: object) -> int | None:
    """An integer (JSON's, or numpy's) as an int; None for anything else or a boolean. A float without a fraction
    is the integer it writes: JSON has one number type, and JSON Schema's (the OpenAPI document's) ``integer``
    includes 2.0, so a body a schema-driven client writes that way is read as 2."""
    if isinstance(value, bool | np_bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def convert(kind: str, value: object) -> object | None:
    """``value`` as the Python value of ``kind``, or None when it is not one."""
    if kind == "str":
        return value if isinstance(value, str) else None
    if kind == "bool":
        return bool(value) if isinstance(value, bool | np_bool) else None
    if kind == "int":
        return as_int(value)
    if kind == "number":
        return as_float(value)
    if isinstance(value, list | tuple) and len(value) == 2:  # "size"
        width, height = as_float(value[0]), as_float(value[1])
        if width is not None and height is not None:
            return (width, height)
    return None


def short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def typed(data: Mapping[str, object], types: Mapping[str, str], prefix: str) -> dict[str, object]:
    """The given (not ``None``) fields of ``data``, type-checked."""
    out: dict[str, object] = {}
    for name, value in data.items():
        kind = types.get(name)
        if kind is None:
            raise InvalidInput(f"unknown field; expected one of {', '.join(types)}", field=prefix + name)
        if value is None:
            continue
        converted = convert(kind, value)
        if converted is None:
            raise InvalidInput(f"must be {TYPE_WORDS[kind]}, got {short(value)}", field=prefix + name)
        out[name] = converted
    return out
