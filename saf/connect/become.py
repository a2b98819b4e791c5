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


# Run once per node before the first command that needs the password, so that a wrong password
# fails as "sudo refused the password" rather than as whatever exit status the command has.
# -k with a command neither uses nor leaves a cached ticket on the node.
VERIFY = "sudo -S -k -p '' true"


def refusal(stderr: str) -> str:
    """What sudo said when it refused, in one line (its last non-empty stderr line)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "no reason given"
