"""Dataclasses <-> JSON, checked field by field against the type hints (no dependency: the records are plain
dataclasses of ``str``, ``int``, ``float``, ``bool``, ``list[T]``, ``dict[str, T]``, ``X | None``, ``Literal``
and nested dataclasses, which the standard library describes completely).

Reading is strict: every field must be present (unless declared :func:`optional`), no unknown field is allowed,
and every value must have its declared type (an ``int`` is accepted for a ``float``, ``bool`` is never a number).
The first problem raises :class:`FieldError` with the path of the field (``results[0].top1_err``).
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin


class FieldError(Exception):
    """A value that does not fit its record: ``field`` is its path (``""`` for the whole file)."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field, self.problem = field, problem


def optional(**kw) -> Any:
    """A field that may be absent from the file (a writer leaves it out when the command did not make it);
    ``None`` in memory, and not written when ``None``. ``metadata={"json": NAME}``: its JSON name when that is
    not a Python identifier (``class``)."""
    return dataclasses.field(default=None, metadata={"optional": True, **kw.pop("metadata", {})}, **kw)


def json_name(f: dataclasses.Field) -> str:
    return f.metadata.get("json", f.name)


def is_optional(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("optional"))


@cache
def hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def encode(value):
    """A dataclass (or anything inside one) as plain JSON values: tensors and NumPy arrays as nested lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {json_name(f): encode(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not (is_optional(f) and getattr(value, f.name) is None)}
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and callable(value.tolist):  # torch.Tensor, np.ndarray, np.generic
        return value.tolist()
    return value


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@cache
def _plain_check(tp):
    """For a type made only of lists and str/int/float/bool (tensors as nested lists): a fast whole-value test,
    else None. A value that fails it goes the slow way, which names the element that is wrong."""
    if tp in (float, int, str, bool):
        return {float: _is_number, int: _is_int, str: lambda v: isinstance(v, str),
                bool: lambda v: isinstance(v, bool)}[tp]
    if get_origin(tp) is list:
        item = _plain_check(get_args(tp)[0])
        if item is not None:
            return lambda v: isinstance(v, list) and all(map(item, v))
    return None


def decode(tp, value):
    """``value`` (parsed JSON) as type ``tp``; :class:`FieldError` naming the first field that does not fit (its
    path relative to ``value``)."""
    if tp is Any:
        return value
    plain = _plain_check(tp)
    if plain is not None and plain(value):
        return value
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return decode(option, value)
            except FieldError as err:
                if err.field:  # the value has the shape of this option but a field inside it is wrong
                    raise
        raise FieldError("", f"is {describe(value)}, not {' or '.join(expected(o) for o in options)}")
    if origin is Literal:
        if value not in get_args(tp):
            raise FieldError("", f"is {value!r}, not one of {', '.join(map(repr, get_args(tp)))}")
        return value
    if dataclasses.is_dataclass(tp):
        return decode_object(tp, value)
    if origin in (list, tuple) or tp in (list, tuple):
        _expect(isinstance(value, list), value, tp)
        (item,) = get_args(tp)[:1] or (Any,)
        return [_inside(f"[{i}]", item, v) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        _expect(isinstance(value, dict), value, tp)
        _, item = get_args(tp) or (str, Any)
        return {k: _inside(f"[{k!r}]", item, v) for k, v in value.items()}
    if tp is float:
        _expect(_is_number(value), value, tp)
        return value  # an integer stays one (as written)
    if tp is int:
        _expect(_is_int(value), value, tp)
        return value
    if tp in (str, bool):
        _expect(isinstance(value, tp), value, tp)
        return value
    raise TypeError(f"the codec has no rule for {tp!r}")  # a record declared with an unsupported type


def _inside(step: str, tp, value):
    """:func:`decode` of a part of a value: an error's field path gets ``step`` in front."""
    try:
        return decode(tp, value)
    except FieldError as err:
        raise FieldError(_join(step, err.field), err.problem) from None


def decode_object(cls, value):
    """A dataclass from a JSON object: every non-optional field present, no unknown field."""
    _expect(isinstance(value, dict), value, cls)
    known = _fields(cls)
    kwargs = {}
    for name, (attr, tp, optional_) in known.items():
        if name not in value:
            if optional_:
                continue
            raise FieldError(name, "is missing")
        kwargs[attr] = _inside(name, tp, value[name])
    for key in value:  # after the missing ones: a renamed field is reported by its expected name
        if key not in known:
            raise FieldError(key, "is not a field of this record (renamed, or from another version)")
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        check()  # FieldErrors relative to the object
    return obj


@cache
def _fields(cls) -> dict[str, tuple[str, Any, bool]]:
    """JSON name -> (attribute, type, optional) of a dataclass."""
    return {json_name(f): (f.name, hints(cls)[f.name], is_optional(f)) for f in dataclasses.fields(cls)}


def _join(field: str, name: str) -> str:
    if not field or not name:
        return field or name
    return f"{field}{name}" if name.startswith("[") else f"{field}.{name}"


def _expect(ok: bool, value, tp) -> None:
    if not ok:
        raise FieldError("", f"is {describe(value)}, not {expected(tp)}")


def expected(tp) -> str:
    origin = get_origin(tp) or tp
    if dataclasses.is_dataclass(tp):
        return "an object"
    return {dict: "an object", list: "a list", tuple: "a list", str: "a string", int: "an integer",
            float: "a number", bool: "true/false", type(None): "null"}.get(origin, str(tp))


def describe(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()} (true/false)"
    if isinstance(value, (int, float)):
        return f"the number {value}" if math.isfinite(value) else f"{value}"
    kind = {dict: "an object", list: "a list", str: "a string"}.get(type(value), type(value).__name__)
    return kind


def same_length(field: str, values, n: int, what: str) -> None:
    """A record check: ``values`` has ``n`` entries (one per ``what``)."""
    if len(values) != n:
        raise FieldError(field, f"has {len(values)} entries, not {n} (one per {what})")


def at_least(low: int, **values) -> None:
    """A record check: each named value is at least ``low`` (a count, a size, a k)."""
    for field, value in values.items():
        if value is not None and value < low:
            raise FieldError(field, f"is {value}, below {low}")


def box(field: str, value: list[int] | None) -> None:
    """A record check: a pixel box ``[x0, y0, x1, y1]`` inside a figure, not empty."""
    if value is not None and not (len(value) == 4 and 0 <= value[0] < value[2] and 0 <= value[1] < value[3]):
        raise FieldError(field, f"is {value}, not a box [x0, y0, x1, y1] with 0 <= x0 < x1, 0 <= y0 < y1")
