"""Turning pydantic validation errors into one clear :class:`~.errors.ConfigError`.

The message names the file, the field path (dotted, with ``[i]`` for list items),
what was given and what is allowed, with the allowed values read from the schema's
types and bounds, and the nearest valid key for an unknown one.
"""

from __future__ import annotations

import enum
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from .errors import ConfigError, suggest
from .schema import Agency, CrossFieldError, Enforcement, Scenario


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_KEY = "[key]"  # pydantic's marker, in an error location, for a bad key of a mapping


def _unwrap(ann: Any) -> tuple[Any, list[Any]]:
    """Strip ``Annotated[...]`` and ``X | None`` from a type; return it and its constraints (Ge, Le...)."""
    meta: list[Any] = []
    while True:
        origin = get_origin(ann)
        if origin is Annotated:
            for m in ann.__metadata__:
                meta.extend(m.metadata if isinstance(m, FieldInfo) else [m])
            ann = get_args(ann)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(ann) if a is not type(None)]
            if len(args) != 1:
                return ann, meta
            ann = args[0]
        else:
            return ann, meta


def _is_model(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


def _type_at(loc: tuple[Any, ...]) -> tuple[Any, list[Any]] | None:
    """The schema type (and its constraints) of the field at an error location, or None."""
    ann: Any = Scenario
    meta: list[Any] = []
    for part in loc:
        origin = get_origin(ann)
        if _is_model(ann):
            info = ann.model_fields.get(part) if isinstance(part, str) else None
            if info is not None:
                ann, inner = _unwrap(info.annotation)
                meta = [*info.metadata, *inner]
            elif ann is Enforcement and isinstance(part, str):
                ann, meta = Agency, []  # enforcement.BE: an agency (the model's extra keys)
            else:
                return None
        elif origin is dict:
            ann, meta = _unwrap(get_args(ann)[1])
        elif origin is list and isinstance(part, int):
            ann, meta = _unwrap(get_args(ann)[0])
        else:
            return None
    return ann, meta


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """Valid keys of the model found at ``loc`` (for 'did you mean')."""
    found = _type_at(loc)
    return list(found[0].model_fields) if found and _is_model(found[0]) else []


def _num(x: float) -> str:
    return f"{x:g}"


def _bounds(noun: str, meta: list[Any], whole: bool) -> str:
    lo = hi = None
    lo_op, hi_op = ">=", "<="
    for m in meta:
        if isinstance(m, at.Ge):
            lo, lo_op = m.ge, ">="
        elif isinstance(m, at.Gt):
            lo, lo_op = m.gt, ">"
        elif isinstance(m, at.Le):
            hi, hi_op = m.le, "<="
        elif isinstance(m, at.Lt):
            hi, hi_op = m.lt, "<"
    if lo is not None and hi is not None:
        if (lo_op, hi_op) == (">=", "<="):
            return f"{noun} from {_num(lo)} to {_num(hi)}" if whole else f"{noun} between {_num(lo)} and {_num(hi)}"
        return f"{noun} {lo_op} {_num(lo)} and {hi_op} {_num(hi)}"
    if lo is not None:
        return f"{noun} {lo_op} {_num(lo)}"
    if hi is not None:
        return f"{noun} {hi_op} {_num(hi)}"
    return noun


def _describe(ann: Any, meta: list[Any]) -> str | None:
    """What the schema allows for a field, in words: 'a number between 0 and 1', 'one of hub, regional'."""
    origin = get_origin(ann)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(ann))
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return "one of " + ", ".join(str(m.value) for m in ann)
    if ann is bool:
        return "true or false"
    if ann is int:
        return _bounds("a whole number", meta, whole=True)
    if ann is float:
        return _bounds("a number", meta, whole=False)
    if ann is str:
        return "non-empty text" if any(getattr(m, "min_length", 0) for m in meta) else "text"
    if origin is dict:
        key, value = (_describe(*_unwrap(a)) for a in get_args(ann))
        return f"a mapping of {key or 'keys'} to {value or 'values'}"
    if origin is list:
        item = _describe(*_unwrap(get_args(ann)[0]))
        return f"a list, each item {item}" if item else "a list"
    if _is_model(ann):
        keys = ", ".join(ann.model_fields)
        if ann is Enforcement:
            return f"a mapping with keys {keys} or two-letter country codes (agencies) such as BE"
        return f"a mapping with keys {keys}"
    return None


# what went wrong, in plain words, for pydantic's error types (bounds keep pydantic's own words)
_PROBLEMS = {
    "int_parsing": "not a whole number",
    "int_type": "not a whole number",
    "int_from_float": "not a whole number (it has a fractional part)",
    "float_parsing": "not a number",
    "float_type": "not a number",
    "finite_number": "not a finite number",
    "bool_parsing": "not true or false",
    "bool_type": "not true or false",
    "dict_type": "not a mapping",
    "model_type": "not a mapping",
    "model_attributes_type": "not a mapping",
    "list_type": "not a list",
    "string_type": "not text",
    "literal_error": "not one of the allowed values",
    "enum": "not one of the allowed values",
    "too_short": "too few items",
    "string_too_short": "must not be empty",
}

# what is allowed when the schema type cannot be found (e.g. a validator of another model)
_FALLBACK_ALLOWED = {
    "int_parsing": lambda c: "a whole number",
    "int_type": lambda c: "a whole number",
    "int_from_float": lambda c: "a whole number",
    "float_parsing": lambda c: "a number",
    "float_type": lambda c: "a number",
    "finite_number": lambda c: "a finite number",
    "bool_parsing": lambda c: "true or false",
    "bool_type": lambda c: "true or false",
    "dict_type": lambda c: "a mapping (key: value)",
    "model_type": lambda c: "a mapping (key: value)",
    "model_attributes_type": lambda c: "a mapping (key: value)",
    "list_type": lambda c: "a list, e.g. [a, b]",
    "string_type": lambda c: "text",
    "literal_error": lambda c: "one of " + str(c.get("expected", "")).replace("'", "").replace(" or ", ", "),
    "enum": lambda c: "one of " + str(c.get("expected", "")).replace("'", "").replace(" or ", ", "),
    "greater_than_equal": lambda c: f">= {c['ge']}",
    "greater_than": lambda c: f"> {c['gt']}",
    "less_than_equal": lambda c: f"<= {c['le']}",
    "less_than": lambda c: f"< {c['lt']}",
    "too_short": lambda c: f"at least {c.get('min_length')} item(s)",
    "string_too_short": lambda c: "non-empty text",
}


def _more(n: int) -> str:
    return f" (+{n} more problem(s))" if n > 0 else ""


def _convert(err: ValidationError, file: str | None, prefix: str = "") -> ConfigError:
    """The first of pydantic's errors as a ConfigError: field path, what was given, what is allowed."""
    from .config import default_ports  # the port data lives with the loader (imported late: no cycle)

    # an unknown key first: a misspelt required field otherwise hides behind "required field is missing"
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = tuple(first["loc"])
    typ = first["type"]
    ctx = first.get("ctx") or {}
    inner = ctx.get("error")
    rest = len(errors) - 1
    if typ == "missing" and len(loc) == 3 and loc[0] == "ports" and str(loc[1]) not in default_ports():
        # a port id not in the port data: usually a typo, else a new port lacking fields
        pid = str(loc[1])
        missing = [str(e["loc"][2]) for e in errors if e["type"] == "missing" and tuple(e["loc"][:2]) == loc[:2]]
        known = list(default_ports())
        hint = suggest(pid, known)
        return ConfigError(
            f"unknown port{'; ' + hint if hint else ''}{_more(rest + 1 - len(missing))}",
            file=file,
            field=_join(prefix, f"ports.{pid}"),
            given=pid,
            allowed=f"a port of the port data ({', '.join(known)}), or a new port with all its fields "
            f"(missing: {', '.join(missing)})",
        )
    more = _more(rest)
    if loc and loc[-1] == _KEY:
        # a bad key of a mapping, e.g. a week that is not a whole number
        found = _type_at(loc[:-2])
        allowed = None
        if found and get_origin(found[0]) is dict:
            allowed = _describe(*_unwrap(get_args(found[0])[0]))
        return ConfigError(
            f"invalid key: {_PROBLEMS.get(typ, first['msg'])}{more}",
            file=file,
            field=_join(prefix, _loc_to_path(loc[:-2])),
            given=loc[-2],
            allowed=allowed or _FALLBACK_ALLOWED.get(typ, lambda c: None)(ctx),
        )
    field = _join(prefix, _loc_to_path(loc))
    if isinstance(inner, CrossFieldError):
        return ConfigError(
            inner.problem + more,
            file=file,
            field=_join(field, inner.field),
            given=inner.given,
            allowed=inner.allowed,
            has_given=True,
            across_fields=True,
        )
    if typ == "extra_forbidden":
        key = str(loc[-1])
        valid = _fields_at(loc[:-1])
        hint = suggest(key, valid)
        return ConfigError(
            f"unknown key{'; ' + hint if hint else ''}{more}",
            file=file,
            field=field,
            given=key,
            allowed=", ".join(valid) if valid else None,
        )
    found = _type_at(loc)
    described = _describe(*found) if found else None
    if typ == "missing":
        return ConfigError(
            f"required field is missing{more}", file=file, field=field, allowed=described or "a value for this field"
        )
    if typ in ("value_error", "assertion_error"):
        # a plain ValueError from a validator: its message is all we know
        problem = str(inner) if inner is not None else first["msg"]
        return ConfigError(problem + more, file=file, field=field, given=first.get("input"), has_given="input" in first)
    problem = _PROBLEMS.get(typ, first["msg"])
    allowed = described or _FALLBACK_ALLOWED.get(typ, lambda c: None)(ctx)
    return ConfigError(
        problem + more, file=file, field=field, given=first.get("input"), allowed=allowed, has_given="input" in first
    )


def _join(prefix: str, field: str) -> str:
    if not prefix or not field:
        return prefix or field
    return prefix + field if field.startswith("[") else f"{prefix}.{field}"
