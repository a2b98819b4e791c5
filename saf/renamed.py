"""Old names still read for now: a shipped recipe, a step kind, a cockpit keymap id. Each use
prints one notice line on stderr naming the new name (and the file and line that used it,
where there is one), then goes on as if the new name had been written. Model serving was
called "serve" / "Serving" until saf serve (the cockpit hub for tablets) made that word mean
two things; these tables are what remains of that, to be emptied in a later release."""

from __future__ import annotations

import sys
from pathlib import Path

# old name -> new name
OLD_RECIPES: dict[str, str] = {"serve": "models"}
OLD_KINDS: dict[str, str] = {"serve": "model"}
OLD_BINDING_IDS: dict[str, str] = {
    "screen.serving": "screen.models",
    **{f"serving.{action}": f"models.{action}" for action in (
        "back", "up", "down", "check", "logs", "stop", "restart", "refresh")}}


def notice(text: str) -> None:
    # stderr, so `--json` on stdout stays one document.
    print(f"saf: {text}", file=sys.stderr)


def renamed(what: str, old: str, new: str, path: Path | None = None,
            line: int | None = None) -> str:
    """Say that `what` `old` is now `new` (at path:line when given); returns `new`."""
    where = ""
    if path is not None:
        where = f"{path}:{line}: " if line else f"{path}: "
    notice(f"{where}{what} {old!r} is now {new!r}; the old name will go")
    return new
