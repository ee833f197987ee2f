"""Dataclasses that are at once the typed model, the parser and the CRD's OpenAPI schema.

A model field is declared once, with ``prop(...)``: its JSON name, default, bounds, enum
and description. From that one declaration

- ``openapi(cls)`` builds the structural schema that goes into the CRD (with defaults,
  so the API server fills in what the user left out),
- ``parse(cls, raw, path)`` builds the typed object and raises ``SpecError`` naming the
  field path (``spec.storage.size: …``) when the API server was bypassed or is older,
- ``dump(obj)`` turns a typed object back into JSON (used for the status we write).

Supported field types: ``int``, ``float``, ``bool``, ``str``, ``X | None``, nested
dataclasses, ``tuple[X, ...]`` (arrays) and ``dict[str, X]`` (maps); anything else
declares its own ``schema=`` and ``parser=``.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING
from typing import Any, ClassVar, Protocol, TypeVar

Json = dict[str, Any]
Parser = Callable[[Any, str], Any]


class SpecError(ValueError):
    """An invalid resource; the message starts with the field path."""


@dataclasses.dataclass(frozen=True)
class Rule:
    """A CEL rule (x-kubernetes-validations); the operator re-checks it in Python."""

    rule: str
    message: str
    message_expression: str | None = None

    def to_json(self) -> Json:
        out: Json = {"rule": self.rule, "message": self.message}
        if self.message_expression:
            out["messageExpression"] = self.message_expression
        return out


class Model(Protocol):
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]


M = TypeVar("M", bound=Model)


def prop(
    default: Any = MISSING,
    *,
    json: str | None = None,
    doc: str,
    factory: Callable[[], Any] | None = None,
    enum: tuple[str, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    pattern: str | None = None,
    min_length: int | None = None,
    rules: tuple[Rule, ...] = (),
    schema: Json | Callable[[], Json] | None = None,
    parser: Parser | None = None,
    list_map_keys: tuple[str, ...] | None = None,
) -> Any:
    """A model field. ``json`` defaults to the camelCase form of the attribute name."""
    meta = {
        "json": json,
        "doc": doc,
        "enum": enum,
        "minimum": minimum,
        "maximum": maximum,
        "pattern": pattern,
        "min_length": min_length,
        "rules": rules,
        "schema": schema,
        "parser": parser,
        "list_map_keys": list_map_keys,
    }
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def json_name(f: dataclasses.Field[Any]) -> str:
    return str(f.metadata.get("json") or camel(f.name))


def _hints(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _optional(tp: Any) -> tuple[Any, bool]:
    """(inner type, is optional) for ``X | None``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _fields(cls: type[Any]) -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(cls)


# ---- OpenAPI ---------------------------------------------------------------------------


def _type_schema(tp: Any) -> Json:
    tp, _ = _optional(tp)
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if _is_model(tp):
        return openapi(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return {"type": "array", "items": _type_schema(args[0])}
    if origin in (dict, Mapping) or origin is typing.get_origin(Mapping[str, str]):
        return {"type": "object", "additionalProperties": _type_schema(args[1])}
    raise TypeError(f"no schema for {tp!r}; declare schema= on the field")


def _has_default(f: dataclasses.Field[Any]) -> bool:
    return f.default is not MISSING or f.default_factory is not MISSING


def _field_schema(f: dataclasses.Field[Any], tp: Any) -> Json:
    meta = f.metadata
    custom = meta.get("schema")
    schema: Json = dict(custom() if callable(custom) else custom) if custom else _type_schema(tp)
    schema.pop("description", None)  # the field's own words win over its type's
    schema = {"description": meta["doc"], **schema}
    for key, name in (
        ("enum", "enum"),
        ("minimum", "minimum"),
        ("maximum", "maximum"),
        ("pattern", "pattern"),
        ("min_length", "minLength"),
    ):
        if meta.get(key) is not None:
            value = meta[key]
            schema[name] = list(value) if key == "enum" else value
    if meta.get("list_map_keys"):
        schema["x-kubernetes-list-type"] = "map"
        schema["x-kubernetes-list-map-keys"] = list(meta["list_map_keys"])
    if meta.get("rules"):
        schema["x-kubernetes-validations"] = [r.to_json() for r in meta["rules"]]
    inner, _ = _optional(tp)
    if f.default is not MISSING and f.default is not None:
        schema["default"] = f.default
    elif f.default_factory is not MISSING and _is_model(inner):
        schema["default"] = {}  # so that the API server fills in the nested defaults
    return schema


def openapi(cls: type[Any]) -> Json:
    """The structural OpenAPI v3 schema of a model class."""
    hints = _hints(cls)
    props: Json = {}
    required: list[str] = []
    for f in _fields(cls):
        props[json_name(f)] = _field_schema(f, hints[f.name])
        if not _has_default(f):
            required.append(json_name(f))
    schema: Json = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    doc = (cls.__doc__ or "").strip()
    if doc and "\n\n" not in doc:
        schema["description"] = doc
    rules: tuple[Rule, ...] = getattr(cls, "RULES", ())
    if rules:
        schema["x-kubernetes-validations"] = [r.to_json() for r in rules]
    return schema


# ---- parsing ---------------------------------------------------------------------------


def _fail(path: str, message: str) -> SpecError:
    return SpecError(f"{path}: {message}")


def _parse_value(tp: Any, raw: Any, path: str, strict: bool = True) -> Any:
    tp, optional = _optional(tp)
    if raw is None:
        if optional:
            return None
        raise _fail(path, "must be set")
    if tp is bool:
        if not isinstance(raw, bool):
            raise _fail(path, f"must be a boolean, not {raw!r}")
        return raw
    if tp is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise _fail(path, f"must be an integer, not {raw!r}")
        return raw
    if tp is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise _fail(path, f"must be a number, not {raw!r}")
        return float(raw)
    if tp is str:
        if not isinstance(raw, str):
            raise _fail(path, f"must be a string, not {raw!r}")
        return raw
    if _is_model(tp):
        return parse(tp, raw, path, strict=strict)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is tuple:
        if not isinstance(raw, list):
            raise _fail(path, "must be a list")
        return tuple(
            _parse_value(args[0], item, f"{path}[{i}]", strict) for i, item in enumerate(raw)
        )
    if origin in (dict, Mapping) or origin is typing.get_origin(Mapping[str, str]):
        if not isinstance(raw, dict):
            raise _fail(path, "must be a mapping")
        return {str(k): _parse_value(args[1], v, f"{path}.{k}", strict) for k, v in raw.items()}
    raise TypeError(f"cannot parse {tp!r}")


def _check_bounds(f: dataclasses.Field[Any], value: Any, path: str) -> None:
    meta = f.metadata
    if value is None:
        return
    if meta.get("enum") is not None and value not in meta["enum"]:
        allowed = ", ".join(meta["enum"])
        raise _fail(path, f"must be one of {allowed}, not {value!r}")
    if meta.get("minimum") is not None and value < meta["minimum"]:
        raise _fail(path, f"must be at least {meta['minimum']}, not {value}")
    if meta.get("maximum") is not None and value > meta["maximum"]:
        raise _fail(path, f"must be at most {meta['maximum']}, not {value}")
    if meta.get("pattern") is not None and not re.fullmatch(meta["pattern"], value):
        raise _fail(path, f"{value!r} does not match {meta['pattern']}")
    if meta.get("min_length") is not None and len(value) < meta["min_length"]:
        raise _fail(path, f"must have at least {meta['min_length']} characters")


def parse(cls: type[M], raw: Any, path: str, *, strict: bool = True) -> M:
    """Build ``cls`` from JSON, applying the declared defaults.

    Unknown keys are errors when ``strict`` (specs), and ignored otherwise (a status that
    a newer operator wrote).
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise _fail(path, "must be an object")
    hints = _hints(cls)
    known = {json_name(f) for f in _fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown and strict:
        raise _fail(f"{path}.{unknown[0]}", "unknown field")
    values: dict[str, Any] = {}
    for f in _fields(cls):
        key = json_name(f)
        sub = f"{path}.{key}"
        if key not in raw or raw[key] is None and _has_default(f):
            if not _has_default(f):
                raise _fail(sub, "is required")
            continue
        custom: Parser | None = f.metadata.get("parser")
        if custom:
            value = custom(raw[key], sub)
        else:
            value = _parse_value(hints[f.name], raw[key], sub, strict)
        _check_bounds(f, value, sub)
        values[f.name] = value
    obj = cls(**values)
    check = getattr(obj, "check", None)
    if callable(check):
        check(path)
    return obj


# ---- dumping ---------------------------------------------------------------------------


def dump(obj: Any) -> Any:
    """JSON form of a model object (None fields left out)."""
    if _is_model(type(obj)):
        out: Json = {}
        for f in _fields(type(obj)):
            value = getattr(obj, f.name)
            if value is None:
                continue
            out[json_name(f)] = dump(value)
        return out
    if isinstance(obj, tuple | list):
        return [dump(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): dump(v) for k, v in obj.items()}
    return obj


def defaults(cls: type[M]) -> M:
    """The object that an empty JSON object parses to."""
    return parse(cls, {}, "spec")
