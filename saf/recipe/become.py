"""Running a step's commands as root: `sudo -n` when the node allows it without a password,
otherwise `sudo -S` with the password saf asked for once, fed on stdin (never on a command line,
never written anywhere)."""

from __future__ import annotations

from saf.shell import quote

PROBE = ('if [ "$(id -u)" = 0 ]; then echo root; '
         'elif sudo -n true 2>/dev/null; then echo nopass; '
         'elif command -v sudo >/dev/null 2>&1; then echo password; else echo nosudo; fi')


def wrap(command: str, mode: str) -> str:
    """`command` run as root, for a node whose PROBE answered `mode`."""
    if mode == "root":
        return command
    if mode == "nopass":
        return f"sudo -n -- sh -c {quote(command)}"
    # -p '' keeps sudo's prompt out of the output; -k forgets any cached ticket so a wrong
    # password always fails the same way.
    return f"sudo -S -k -p '' -- sh -c {quote(command)}"
