"""Editing one line of an inventory a person wrote: a node's `python = "..."` (python-match's
offer), the rest of the file (comments, order, spacing) left exactly as it was.

A re-dump through a TOML writer would drop every comment, so the edit is a line: the node's
own `python = ` line gets the new value, or, when the node inherits `python` from [defaults],
a `python = ` line goes in under its `name = `. What cannot be edited as a line (a node written
as an inline table, a value sharing its line with another key) is refused with the file:line,
to edit by hand. The result is read back before it is written, and written atomically.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from saf import paths, tomlpos
from saf.errors import InventoryError

# `python = "..."` or `python = '...'` alone on its line, maybe with a comment after it.
_PYTHON_LINE = re.compile(r"""^(?P<lead>\s*python\s*=\s*)(?P<value>"(?:[^"\\]|\\.)*"|'[^']*')"""
                          r"""(?P<rest>\s*(?:#.*)?)$""")
_NAME_LINE = re.compile(r"""^(?P<indent>\s*)name\s*=\s*("(?:[^"\\]|\\.)*"|'[^']*')\s*(#.*)?$""")


@dataclass(frozen=True)
class LineEdit:
    """One line of the inventory changed (`old` set) or added (`old` None) at `line`."""

    path: Path
    line: int  # 1-based, in the file as it is now (an added line: where it will be)
    old: str | None
    new: str

    def describe(self) -> str:
        """The edit as --check shows it: `saf.toml:12: - python = "a"  + python = "b"`."""
        where = f"{self.path}:{self.line}:"
        if self.old is None:
            return f"{where} + {self.new.strip()}"
        return f"{where} - {self.old.strip()}  + {self.new.strip()}"


def _toml_string(value: str) -> str:
    # A TOML basic string: JSON's escapes are TOML's (\" \\ \n \uXXXX).
    return json.dumps(value, ensure_ascii=False)


def _plan(path: Path, text: str, node: str, python: str) -> tuple[LineEdit, list[str]]:
    """The edit that sets `node`'s python, and the file's lines after it."""
    try:
        data = tomlpos.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(path, f"cannot edit it: {exc}") from None
    positions = tomlpos.TomlPositions(text)
    nodes = data.get("nodes")
    index = next((i for i, entry in enumerate(nodes or []) if isinstance(entry, dict)
                  and entry.get("name") == node), None)
    if index is None:
        raise InventoryError(path, f"cannot set python for {node!r}: no [[nodes]] entry has "
                                   "that name")
    lines = text.splitlines(keepends=True)
    table = positions.lines.get(("nodes", index))
    own = positions.lines.get(("nodes", index, "python"))
    name = positions.lines.get(("nodes", index, "name"))
    new_value = _toml_string(python)
    hand = f"set python = {new_value} for {node} by hand"
    if own is not None:
        old = lines[own - 1]
        match = _PYTHON_LINE.match(old.rstrip("\r\n"))
        if match is None or own == table:
            raise InventoryError(path, f"cannot edit node {node!r}'s python as one line; "
                                       f"{hand}", line=own)
        ending = old[len(old.rstrip("\r\n")):]
        new = f"{match['lead']}{new_value}{match['rest']}{ending}"
        edit = LineEdit(path, own, old.rstrip("\r\n"), new.rstrip("\r\n"))
        lines[own - 1] = new
    else:
        if name is None or name == table:  # an inline table: no line of its own to add
            raise InventoryError(path, f"cannot add a python line to node {node!r}; {hand}",
                                 line=name or table or positions.line("nodes"))
        match = _NAME_LINE.match(lines[name - 1].rstrip("\r\n"))
        if match is None:
            raise InventoryError(path, f"cannot add a python line to node {node!r}; {hand}",
                                 line=name)
        ending = lines[name - 1][len(lines[name - 1].rstrip("\r\n")):] or "\n"
        new = f"{match['indent']}python = {new_value}{ending}"
        edit = LineEdit(path, name + 1, None, new.rstrip("\r\n"))
        lines.insert(name, new)
    after = "".join(lines)
    try:  # read back: the edit says what it set, or nothing is written
        check = tomlpos.loads(after)["nodes"][index]
    except (tomllib.TOMLDecodeError, KeyError, IndexError, TypeError):
        check = {}
    if check.get("name") != node or check.get("python") != python:
        raise InventoryError(path, f"editing node {node!r}'s python would not read back as "
                                   f"written; {hand}", line=edit.line)
    return edit, lines


def python_edit(path: Path, node: str, python: str) -> LineEdit | None:
    """What setting `node`'s python would change in the file (None: it says that already)."""
    text = _read(path)
    if _current(text, node) == python:
        return None
    return _plan(path, text, node, python)[0]


def set_python(path: Path, node: str, python: str) -> LineEdit | None:
    """Set `node`'s python in the file as one line, atomically; the edit made, or None when
    the file said so already. The file is read afresh: the caller holds no copy of it."""
    text = _read(path)
    if _current(text, node) == python:
        return None
    edit, lines = _plan(path, text, node, python)
    mode = path.stat().st_mode & 0o777
    paths.replace_atomically(path, "".join(lines).encode("utf-8"), mode=mode)
    return edit


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(path, f"cannot read it to edit: {exc}") from None


def _current(text: str, node: str) -> object:
    try:
        nodes = tomlpos.loads(text).get("nodes") or []
    except tomllib.TOMLDecodeError:
        return None
    for entry in nodes:
        if isinstance(entry, dict) and entry.get("name") == node:
            return entry.get("python")
    return None
