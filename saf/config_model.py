"""One way to read a file a person writes into a declared model, with file:line errors.

Each file's shape is declared once as msgspec Structs (`forbid_unknown_fields=True`, ranges as
`Annotated[..., Meta(ge=..., le=...)]`, choices as `Literal`); `decode` converts the parsed TOML
into it. msgspec reports a mistake as text with a path (`Expected int <= 65535 - at
$.nodes[0].port`); `decode` walks that path through the model and the data to say it in the
file's terms: the line (from saf.tomlpos), the key, what was expected and what was written,
and the known keys for an unknown one. A field's `Meta(description=...)` words what it expects
when the type alone would say it badly. Checks that are not about shape (duplicate names, a
command that must split) stay small functions after decoding, raising through `Source.fail`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from msgspec import inspect as mi

from saf.errors import ConfigError, brief
from saf.numbers import number_problem
from saf.tomlpos import TomlPositions, load_toml

T = TypeVar("T")
Where = tuple[Any, ...]

_AT = re.compile(r"^(?P<what>.*) - at `\$(?P<path>[^`]*)`$", re.S)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_UNKNOWN = re.compile(r"^Object contains unknown field `(.*)`$", re.S)
_MISSING = re.compile(r"^Object missing required field `(.*)`$", re.S)
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")
_NOTHING = object()


def dotted(where: Where) -> str:
    """A path as TOML would write the key: `defaults.vars.x`, `steps[2].timeout`; a key that
    is not bare is quoted (so a message stays one line)."""
    out = ""
    for part in where:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if _BARE.match(part) else brief(part)
            out += f".{text}" if out else text
    return out


@dataclass(frozen=True)
class Source:
    """Where a file's errors point: its path, a way to find a key's line, the error class,
    a prefix for every message (`[signals] `), and how tables and keys are named."""

    path: Path | None
    line: Callable[[Where], int | None] = lambda where: None
    error: type[ConfigError] = ConfigError
    prefix: str = ""
    # The name of the table at `where` in "unknown key ... in NAME"; "" for none.
    table: Callable[[Where], str] = field(default=lambda where: f"[{dotted(where)}]"
                                          if where else "")
    # The name of the key at `where` in "NAME must be ...".
    key: Callable[[Where], str] = dotted

    def fail(self, where: Where, message: str) -> ConfigError:
        return self.error(self.path, self.prefix + message, line=self.line(where))

    def within(self, at: Where) -> Source:
        """This source for a table inside the file (a step decoded on its own): paths are
        taken as under `at`, for lines and names alike."""
        return dataclasses.replace(self, line=lambda where: self.line(at + where),
                                   table=lambda where: self.table(at + where),
                                   key=lambda where: self.key(at + where))

    @classmethod
    def of_file(cls, path: Path | None, at: Where = (), **kwargs: Any) -> Source:
        """A Source whose lines are read from `path` (under the table `at`) only when an
        error needs one: for tables read long after their file was parsed."""
        cache: list[TomlPositions] = []

        def line(where: Where) -> int | None:
            if not cache:
                cache.append(TomlPositions(""))
                if path is not None:
                    try:
                        cache[0] = load_toml(path)[1]
                    except ConfigError:
                        pass
            return cache[0].line(*at, *where)
        return cls(path, line, **kwargs)

    @classmethod
    def of_positions(cls, path: Path | None, positions: TomlPositions, **kwargs: Any
                     ) -> Source:
        return cls(path, lambda where: positions.line(*where), **kwargs)


def decode(data: Any, model: type[T], source: Source) -> T:
    """`data` (parsed TOML) as `model`, or `source.error` saying what is wrong and where.
    Numbers are also refused when not finite (TOML reads nan and inf as floats)."""
    try:
        value = msgspec.convert(data, model)
    except msgspec.ValidationError as exc:
        raise _explain(str(exc), data, model, source) from None
    _check_finite(value, mi.type_info(model), (), data, source)
    return value


def _parse_path(text: str) -> list[Any]:
    parts: list[Any] = []
    for name, index in _SEGMENT.findall(text):
        parts.append(name if name else ("..." if index == "..." else int(index)))
    return parts


def _layers(t: mi.Type) -> Iterator[mi.Type]:
    """`t`, then each type under its Metadata and `| None` (the only unions a config model
    uses alike), down to the concrete type (or a union of several), which comes last."""
    while True:
        yield t
        if isinstance(t, mi.Metadata):
            t = t.type
        elif isinstance(t, mi.UnionType):
            rest = [u for u in t.types if not isinstance(u, mi.NoneType)]
            if len(rest) != 1:
                return
            t = rest[0]
        else:
            return


def _unwrap(t: mi.Type) -> mi.Type:
    """The type under Metadata and `| None`."""
    *_, last = _layers(t)
    return last


def _step(t: mi.Type, data: Any, part: Any) -> tuple[mi.Type | None, Any, Any]:
    """One step down the path: (type there, value there, the concrete part). `...` (msgspec's
    word for a dict key) is found again as the first item that does not convert."""
    t = _unwrap(t)
    if isinstance(t, mi.UnionType):  # e.g. str | list[str]: the member that fits the data
        fits = [u for u in t.types if isinstance(_unwrap(u), mi.ListType | mi.DictType
                                                    | mi.StructType)]
        t = fits[0] if fits else t
        t = _unwrap(t)
    if isinstance(t, mi.StructType):
        for f in t.fields:
            if f.encode_name == part:
                return f.type, data.get(part, _NOTHING) if isinstance(data, dict) else _NOTHING, \
                    part
        return None, _NOTHING, part
    if isinstance(t, mi.ListType | mi.SetType | mi.VarTupleType) and isinstance(part, int):
        ok = isinstance(data, list) and part < len(data)
        return t.item_type, data[part] if ok else _NOTHING, part
    if isinstance(t, mi.DictType) and isinstance(data, dict):
        return t.value_type, data.get(part, _NOTHING), part
    return None, _NOTHING, part


def _resolve_keys(text: str, parts: list[Any], data: Any, model: type[Any]) -> list[Any]:
    """msgspec writes a dict's key as `...`; find it again: the key whose item alone, in
    place of the whole dict, gives the same error."""
    for j, part in enumerate(parts):
        if part != "...":
            continue
        table = _at(data, parts[:j])
        if not isinstance(table, dict):
            break
        for key, item in table.items():
            narrowed = _replace(data, parts[:j], {key: item})
            try:
                msgspec.convert(narrowed, model)
            except msgspec.ValidationError as exc:
                if str(exc) == text:
                    parts[j], data = key, narrowed
                    break
    return parts


def _at(data: Any, parts: list[Any]) -> Any:
    for part in parts:
        ok = isinstance(data, dict) and part in data or \
            isinstance(data, list) and isinstance(part, int) and part < len(data)
        data = data[part] if ok else None
    return data


def _replace(data: Any, parts: list[Any], value: Any) -> Any:
    """A copy of `data` with the item at `parts` replaced (copies only along the path)."""
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    if isinstance(data, dict):
        return {**data, head: _replace(data[head], rest, value)}
    copy = list(data)
    copy[head] = _replace(copy[head], rest, value)
    return copy


def _explain(text: str, data: Any, model: type[Any], source: Source) -> ConfigError:
    match = _AT.match(text)  # no path: msgspec speaks of the top level
    what, parts = (match.group("what"), _parse_path(match.group("path"))) if match \
        else (text, [])
    if "..." in parts:
        parts = _resolve_keys(text, parts, data, model)
    t: mi.Type | None = mi.type_info(model)
    value: Any = data
    where: list[Any] = []
    for part in parts:
        if t is None:
            where.append(part)
            continue
        t, value, concrete = _step(t, value, part)
        where.append(concrete)
    at = tuple(where)
    unknown, missing = _UNKNOWN.match(what), _MISSING.match(what)
    if unknown:
        table = _unwrap(t if parts and t is not None else mi.type_info(model))
        if isinstance(table, mi.UnionType):  # a value or a table: the table member
            tables = [u for u in map(_unwrap, table.types) if isinstance(u, mi.StructType)]
            table = tables[0] if tables else table
        known = sorted(f.encode_name for f in table.fields) \
            if isinstance(table, mi.StructType) else []
        name = source.table(at)
        return source.fail(at + (unknown.group(1),),
                           f"unknown key {brief(unknown.group(1))}"
                           f"{' in ' + name if name else ''} (known keys: {', '.join(known)})")
    if missing:
        name = source.table(at) or "the file"
        return source.fail(at, f"{name} has no {missing.group(1)}")
    if t is None:
        return source.fail(at, f"{source.key(at)}: {what}")
    return source.fail(at, f"{source.key(at)} {expectation(t, value, at)}")


def expectation(t: mi.Type, value: Any = _NOTHING, where: Where = ()) -> str:
    """'must be ...' for a value of type `t`, ending ', not VALUE' when one was written."""
    described = _description(t)
    u = _unwrap(t)
    if described:
        wanted = f"must be {described}"
    elif (n := _number_type(u)) is not None:
        low = n.ge if n.ge is not None else n.gt
        high = n.le if n.le is not None else n.lt
        problem = number_problem(value if value is not _NOTHING else None, low=low, high=high,
                                 integer=isinstance(n, mi.IntType))
        wanted = problem or "must be a number"
        if ", not " in wanted:
            return wanted
    elif isinstance(u, mi.StrType):
        wanted = "must be a non-empty string" if u.min_length or u.pattern else \
            "must be a string"
    elif isinstance(u, mi.BoolType):
        wanted = "must be true or false"
    elif isinstance(u, mi.LiteralType):
        wanted = f"must be one of {', '.join(str(v) for v in u.values)}"
    elif isinstance(u, mi.ListType | mi.VarTupleType | mi.SetType):
        item = _unwrap(u.item_type)
        words = isinstance(item, mi.StrType | mi.LiteralType)
        noun = "strings" if words else "tables" if isinstance(item, mi.StructType) else "values"
        wanted = f"must be a list of {noun}"
        if u.min_length:
            wanted = f"must be a non-empty list of {noun}"
        if words and isinstance(value, str) and where and isinstance(where[-1], str):
            # The likeliest slip: one word where a list is wanted; show the fix.
            return f'{wanted}: write {where[-1]} = ["{value}"]'.replace("'", '"')
    elif isinstance(u, mi.DictType | mi.StructType):
        wanted = "must be a table"
    else:
        wanted = "must be a value of another type"
    return wanted if value is _NOTHING else f"{wanted}, not {brief(value)}"


def _number_type(t: mi.Type) -> mi.IntType | mi.FloatType | None:
    """The number a type asks for: itself, or for `int | float` (a number kept as written)
    the float member, whose bounds are the same."""
    if isinstance(t, mi.IntType | mi.FloatType):
        return t
    if isinstance(t, mi.UnionType):
        members = [_unwrap(m) for m in t.types if not isinstance(m, mi.NoneType)]
        if members and all(isinstance(m, mi.IntType | mi.FloatType) for m in members):
            floats = [m for m in members if isinstance(m, mi.FloatType)]
            return (floats or members)[0]  # type: ignore[return-value]  # all() above: numbers
    return None


def _description(t: mi.Type) -> str | None:
    """The outermost `Meta(description=...)` on the way down to the concrete type."""
    for layer in _layers(t):
        if isinstance(layer, mi.Metadata):
            text = (layer.extra_json_schema or {}).get("description")
            if text:
                return str(text)
    return None


def _check_finite(value: Any, t: mi.Type, where: Where, data: Any, source: Source) -> None:
    """msgspec lets inf through a bound on one side only; a number a person writes in saf is
    always finite (saf.numbers)."""
    u = _unwrap(t)
    if isinstance(value, float) and not math.isfinite(value) and _number_type(u) is not None:
        raise source.fail(where, f"{source.key(where)} {expectation(t, value, where)}")
    if isinstance(u, mi.StructType) and isinstance(value, msgspec.Struct):
        for f in u.fields:
            inner = data.get(f.encode_name, _NOTHING) if isinstance(data, Mapping) else _NOTHING
            _check_finite(getattr(value, f.name), f.type, where + (f.encode_name,), inner,
                          source)
    elif isinstance(u, mi.ListType | mi.VarTupleType) and isinstance(value, list | tuple):
        for index, item in enumerate(value):
            inner = data[index] if isinstance(data, list) and index < len(data) else _NOTHING
            _check_finite(item, u.item_type, where + (index,), inner, source)
    elif isinstance(u, mi.DictType) and isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, u.value_type, where + (key,), _NOTHING, source)
