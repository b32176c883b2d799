"""Typed records <-> Docker's JSON, checked the way Go's encoding/json checks it.

dockerd decodes request bodies into Go structs and encodes its answers from
them; pydock does the same with dataclasses. A record class declares each
field with `wfield(json_name, go_type)`: the JSON name Docker uses, the Go type
(which decides what JSON is accepted, the zero value, and the wording of type
errors), and `omitempty` where Go's tag has it. Then

- `decode(cls, body)` turns untrusted JSON into a record: a field of the wrong
  type is dockerd's 400 ("json: cannot unmarshal string into Go struct field
  HostConfig.Memory of type int64"), null and absent fields take Go's zero
  value, unknown fields are ignored and field names match case-insensitively;
- `encode(record)` gives Docker's JSON for it (the API edge, and the stored
  form of records that must stay readable by older and newer versions).

Only the API edge and the stores call these: services work on the records.
Semantic checks (is this a valid IP, an absolute path, a known policy) stay
with the service that owns the value, as in dockerd.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from engine.errors import InvalidParameter

T = TypeVar("T")


@dataclass(frozen=True)
class Scalar:
    """A Go scalar: `kind` is the JSON kind it accepts, `go` its Go type name."""

    go: str
    kind: str  # "string" | "bool" | "int"
    low: int = 0
    high: int = 0


@dataclass(frozen=True)
class Ptr:
    """A Go pointer: null (the zero value) or the pointed-to type."""

    to: GoType


@dataclass(frozen=True)
class List:
    item: GoType
    go: str = ""


@dataclass(frozen=True)
class Map:
    value: GoType


@dataclass(frozen=True)
class StrSlice:
    """Docker's strslice.StrSlice: a list of strings, or one string (decoded as a one-item list)."""


@dataclass(frozen=True)
class Empty:
    """Go's `struct {}`, the value type of Docker's string sets (ExposedPorts, Volumes)."""


# a dataclass type whose fields are all wfields stands for a Go struct
GoType = Scalar | Ptr | List | Map | StrSlice | Empty | type


def _int(go: str, bits: int) -> Scalar:
    return Scalar(go, "int", -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def _uint(go: str, bits: int) -> Scalar:
    return Scalar(go, "int", 0, (1 << bits) - 1)


STRING = Scalar("string", "string")
BOOL = Scalar("bool", "bool")
INT = _int("int", 64)  # Go's int on amd64/arm64
INT64 = _int("int64", 64)
UINT = _uint("uint", 64)
UINT16 = _uint("uint16", 16)
UINT64 = _uint("uint64", 64)
FILE_MODE = _uint("fs.FileMode", 32)
DURATION = _int("time.Duration", 64)
STRINGS = List(STRING)
STRING_MAP = Map(STRING)
STRING_SET = Map(Empty())
STR_SLICE = StrSlice()
EMBED = "<embedded>"  # the json name of an embedded struct: its fields sit in the parent's object


def wfield(json: str, go: GoType, *, omitempty: bool = False,
           default: Callable[[], Any] | None = None) -> Any:
    """A record field: Docker's JSON name, its Go type, and Go's zero value as default (or `default()`)."""
    meta = {"json": json, "go": go, "omitempty": omitempty}
    if default is not None:
        return dataclasses.field(default_factory=default, metadata=meta)
    if isinstance(go, type):
        return dataclasses.field(default_factory=go, metadata=meta)
    return dataclasses.field(default=_zero(go), metadata=meta)


def _zero(t: GoType) -> Any:
    if isinstance(t, Scalar):
        return {"string": "", "bool": False}.get(t.kind, 0)
    if isinstance(t, type):
        return t()
    if isinstance(t, Empty):
        return {}
    return None


def type_name(t: GoType) -> str:
    if isinstance(t, Scalar):
        return t.go
    if isinstance(t, type):
        return str(getattr(t, "GO_NAME", t.__name__))
    if isinstance(t, Ptr):
        return "*" + type_name(t.to)
    if isinstance(t, StrSlice):
        return "strslice.StrSlice"
    if isinstance(t, Empty):
        return "struct {}"
    if isinstance(t, List):
        return t.go or f"[]{type_name(t.item)}"
    return f"map[string]{type_name(t.value)}"


@dataclass(frozen=True)
class _Field:
    attr: str
    json: str
    go: GoType
    omitempty: bool


@functools.cache
def _fields(cls: type) -> tuple[_Field, ...]:
    return tuple(_Field(f.name, f.metadata["json"], f.metadata["go"], f.metadata["omitempty"])
                 for f in dataclasses.fields(cls) if "json" in f.metadata)


@functools.cache
def _json_names(cls: type) -> dict[str, str]:
    """Case-folded JSON name -> JSON name, over `cls` and the structs it embeds."""
    out: dict[str, str] = {}
    for f in _fields(cls):
        if f.json == EMBED:
            assert isinstance(f.go, type)
            out.update(_json_names(f.go))
        else:
            out[f.json.lower()] = f.json
    return out


# ---- decoding ---------------------------------------------------------------

def decode(cls: type[T], body: Any) -> T:
    """A request body (or stored record) as a `cls` record, checked as dockerd's json.Decoder would."""
    if body is None:
        return cls()
    if not isinstance(body, dict):
        raise _type_error(body, cls, "", "")
    record: T = _struct(cls, _canonical_keys(body, cls), type_name(cls), "")
    return record


def _canonical_keys(value: dict[str, Any], cls: type) -> dict[str, Any]:
    """Go matches JSON keys to fields case-insensitively; exact spellings win."""
    names = _json_names(cls)
    out = dict(value)
    for key in value:
        canon = names.get(key.lower())
        if canon is not None and canon != key and canon not in value:
            out[canon] = out.pop(key)
    return out


def _struct(cls: type, doc: dict[str, Any], struct: str, path: str) -> Any:
    kwargs = {}
    for f in _fields(cls):
        if f.json == EMBED:
            assert isinstance(f.go, type)
            kwargs[f.attr] = _struct(f.go, doc, struct, path)
        elif doc.get(f.json) is not None:
            kwargs[f.attr] = _value(doc[f.json], f.go, struct, f"{path}.{f.json}" if path else f.json)
    return cls(**kwargs)


def _value(value: Any, t: GoType, struct: str, path: str) -> Any:
    """`value` (not None) as type `t`; raises InvalidParameter at the first mismatch."""
    if isinstance(t, Ptr):
        return _value(value, t.to, struct, path)
    if isinstance(t, Scalar):
        if not _scalar_ok(value, t):
            raise _type_error(value, t, struct, path)
        return value
    if isinstance(t, StrSlice):
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(v is None or isinstance(v, str) for v in value):
            return ["" if v is None else v for v in value]
        raise _type_error(value, t, struct, path)
    if isinstance(t, List):
        if not isinstance(value, list):
            raise _type_error(value, t, struct, path)
        return [_zero(t.item) if v is None else _value(v, t.item, struct, path) for v in value]
    if not isinstance(value, dict):
        raise _type_error(value, t, struct, path)
    if isinstance(t, Empty):
        return {}
    if isinstance(t, Map):
        return {k: _zero(t.value) if v is None else _value(v, t.value, struct, path) for k, v in value.items()}
    return _struct(t, _canonical_keys(value, t), type_name(t), path)


def _scalar_ok(value: Any, t: Scalar) -> bool:
    if t.kind == "string":
        return isinstance(value, str)
    if t.kind == "bool":
        return isinstance(value, bool)
    return isinstance(value, int) and not isinstance(value, bool) and t.low <= value <= t.high


def _json_kind(value: Any) -> str:
    """How Go's decoder names a JSON value in its type errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _type_error(value: Any, t: GoType, struct: str, path: str) -> InvalidParameter:
    where = f"Go struct field {struct}.{path}" if path else "Go value"
    return InvalidParameter(f"json: cannot unmarshal {_json_kind(value)} into {where} of type {type_name(t)}")


# ---- encoding ---------------------------------------------------------------

def encode(record: Any) -> dict[str, Any]:
    """Docker's JSON object for a record."""
    out: dict[str, Any] = {}
    cls: type = record.__class__
    for f in _fields(cls):
        value = getattr(record, f.attr)
        if f.json == EMBED:
            out.update(encode(value))
        elif not (f.omitempty and _empty(value)):
            out[f.json] = _encode_value(value, f.go)
    return out


def _empty(value: Any) -> bool:
    return value is None or value is False or value == 0 or (isinstance(value, (str, list, dict)) and not value)


def _encode_value(value: Any, t: GoType) -> Any:
    if value is None:
        return None
    if isinstance(t, Ptr):
        return _encode_value(value, t.to)
    if isinstance(t, type):
        return encode(value)
    if isinstance(t, List):
        return [_encode_value(v, t.item) for v in value]
    if isinstance(t, Map):
        return {k: _encode_value(v, t.value) for k, v in value.items()}
    if isinstance(t, Empty):
        return {}
    return list(value) if isinstance(value, list) else value

