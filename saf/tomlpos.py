"""Source lines for values in a TOML file, so errors can name the line at fault.

`tomllib` gives values but not positions. This scans the text for table headers and keys and
maps a path such as ("nodes", 2, "port") to the line that sets it. It understands what saf's
files use: [table], [[array.of.tables]], [table.sub] and `key = value` lines, including keys of
an inline table written on one line (`vars = { a = 1 }` maps ("vars", "a") to that line).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from saf.errors import ConfigError

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r'^\s*("[^"]*"|\'[^\']*\'|[A-Za-z0-9_.-]+)\s*=')
_INLINE_KEY = re.compile(r'[{,]\s*("[^"]*"|[A-Za-z0-9_-]+)\s*=')

Path_ = tuple[Any, ...]
# No file saf reads nests deeper than a few levels; tomllib itself recurses per level and a
# crafted file of thousands of `[` would end in a RecursionError deep inside it.
MAX_DEPTH = 32


def loads(text: str) -> dict[str, Any]:
    """tomllib.loads, with nesting deeper than MAX_DEPTH refused as a TOMLDecodeError (the
    error every reader of a TOML file already handles), never a RecursionError."""
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError(f"values nested too deeply (more than {MAX_DEPTH} "
                                      "levels of arrays or tables)") from None
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise tomllib.TOMLDecodeError(f"values nested too deeply (more than {MAX_DEPTH} "
                                          "levels of arrays or tables)")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return data


def _unquote(part: str) -> str:
    part = part.strip()
    if len(part) >= 2 and part[0] == part[-1] and part[0] in "\"'":
        return part[1:-1]
    return part


def _dotted(text: str) -> tuple[str, ...]:
    """A dotted key's parts, unquoted: a dot inside quotes is part of its name
    ("serving.check" is one key; `a."b.c"` is two)."""
    parts: list[str] = []
    current = ""
    quote = ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == ".":
            parts.append(current)
            current = ""
            continue
        current += char
    return tuple(_unquote(part) for part in [*parts, current])


class TomlPositions:
    """Line numbers (1-based) of tables and keys in one TOML document."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Path_, int] = {}
        counts: dict[tuple[str, ...], int] = {}
        table: Path_ = ()
        in_multiline: str | None = None
        for number, raw in enumerate(text.splitlines(), start=1):
            if in_multiline:
                if raw.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            header = _HEADER.match(raw)
            if header and not _KEY.match(raw):
                names = _dotted(header.group(2))
                if header.group(1) == "[[":
                    index = counts.get(names, 0)
                    counts[names] = index + 1
                    table = self._array_path(names, counts)
                else:
                    table = self._array_path(names, counts, is_array=False)
                self.lines.setdefault(table, number)
                continue
            key = _KEY.match(raw)
            if key:
                keypath = table + _dotted(key.group(1))
                self.lines.setdefault(keypath, number)
                for inline in _INLINE_KEY.finditer(raw[key.end():]):
                    self.lines.setdefault(keypath + (_unquote(inline.group(1)),), number)
                for quote in ('"""', "'''"):
                    if raw.count(quote) % 2 == 1:
                        in_multiline = quote

    @staticmethod
    def _array_path(names: tuple[str, ...], counts: dict[tuple[str, ...], int],
                    is_array: bool = True) -> Path_:
        """Turn a header's dotted names into a path with array indices, e.g. [[nodes]] twice
        gives ("nodes", 1); [nodes.vars] after it gives ("nodes", 1, "vars")."""
        path: list[Any] = []
        for i in range(len(names)):
            prefix = names[: i + 1]
            path.append(names[i])
            last = i == len(names) - 1
            if prefix in counts and (not last or is_array):
                path.append(counts[prefix] - 1)
        return tuple(path)

    def line(self, *path: Any) -> int | None:
        """The line of `path`, or of its nearest enclosing table or array entry."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return None


def load_toml(path: Path, error: type[ConfigError] = ConfigError
              ) -> tuple[dict[str, Any], TomlPositions]:
    """Read a TOML file, turning a missing file, bad encoding or bad syntax into a ConfigError
    that names the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(path, "no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(path, f"cannot read: {exc}") from None
    try:
        data = loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(match.group(1)) if match else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        raise error(path, f"TOML syntax error: {message}", line=line) from None
    return data, TomlPositions(text)
