"""Text that came from outside saf (a node's answer, a client's string, an HTTP body), made fit
for one line of a message or a log.

`shown(text)` escapes control characters, newlines and the other invisible or line-breaking
characters (`\\x1b`, `\\n`, `\\u2028`), the backslash too (so an escape cannot be faked), and cuts
the text to `LIMIT` characters: whoever wrote it can never write a line of its own, move the
reader's cursor or retitle their terminal. `saf.errors.brief` is its twin for a value's repr.
"""

from __future__ import annotations

import unicodedata

LIMIT = 200


def _escaped(char: str) -> str:
    code = ord(char)
    if char == "\\":
        return "\\\\"
    if char == "\n":
        return "\\n"
    if char == "\r":
        return "\\r"
    if char == "\t":
        return "\\t"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _unsafe(char: str) -> bool:
    # C*: controls (C0, DEL, C1), format (bidi overrides), surrogates, private, unassigned;
    # Zl/Zp: the Unicode line and paragraph separators, which some viewers break lines at.
    return char == "\\" or unicodedata.category(char)[0] == "C" or \
        unicodedata.category(char) in ("Zl", "Zp")


def shown(value: object, limit: int = LIMIT) -> str:
    """`value` as text fit for one log line (see the module)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="backslashreplace")
    text = str(value)
    cut = len(text) > limit
    text = text[:limit]
    out = "".join(_escaped(c) if _unsafe(c) else c for c in text)
    return out + "…" if cut else out


def escaped_lines(text: str) -> str:
    """`text` with every unsafe character but the backslash escaped, uncut (a message saf
    wrote itself, which may quote a client)."""
    return "".join(_escaped(c) if (_unsafe(c) and c != "\\") else c for c in text)
