"""Building shell commands that are safe to send to a node.

Every value that reaches a shell goes through `quote`. `guarded` wraps a command so that it
never outlives its SSH channel: the command runs in the background with stdin from /dev/null
while a watcher reads the channel's stdin; when that closes (saf cancels, times out, or the
connection drops) the watcher kills the whole process group. This works the same against
OpenSSH (which puts each session in its own process group) and saf's own servers, and needs no
pseudo-terminal or signal support from the server.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from saf.errors import UsageError
from saf.format import fmt_bytes

quote = shlex.quote


# The longest command saf sends: a command line travels in one SSH request, and servers refuse
# larger ones by dropping the connection (OpenSSH's packets stop at 256 KiB), which would read
# as a network fault. Anything this big belongs in a file (kind = "upload").
MAX_COMMAND = 128 * 1024


def check_command_size(command: str) -> None:
    """Refuse a command too long for one SSH request, with its size, before any node sees it."""
    size = len(command.encode())
    if size > MAX_COMMAND:
        raise UsageError(f"the command is {fmt_bytes(size)}; a command line may be at most "
                         f"{fmt_bytes(MAX_COMMAND, digits=0)} (put the data in a file and send "
                         "that)")


# Sets $H to a SHA-256 command that prints "HASH  NAME" lines: coreutils' sha256sum on Linux,
# perl's shasum (shipped with macOS) elsewhere.
SHA256 = 'H=sha256sum; command -v sha256sum >/dev/null 2>&1 || H="shasum -a 256"'


def join(args: Iterable[str]) -> str:
    return " ".join(quote(a) for a in args)


def sh(script: str) -> str:
    """Run `script` under POSIX sh whatever the login shell is (fish, zsh...)."""
    return f"sh -c {quote(script)}"


def guarded(command: str, *, feed_first_line: bool = False) -> str:
    """`command` wrapped so that closing the channel's stdin kills it and its children.

    With `feed_first_line`, the first line written to stdin (e.g. a sudo password) is handed
    to the command's stdin and the rest of stdin stays with the watcher. The line is passed by
    the shell's builtin printf, so it never appears in a process list.
    """
    if feed_first_line:
        start = ('IFS= read -r saf_line <&3\n'
                 f'printf "%s\\n" "$saf_line" | {{ {command}\n}} &\n'
                 'unset saf_line\n')
    else:
        start = f'{{ {command}\n}} </dev/null &\n'
    script = (
        "exec 3<&0 </dev/null\n"
        + start
        + "saf_cmd=$!\n"
        "{ while IFS= read -r _ <&3; do :; done; kill -TERM 0; } &\n"
        "saf_watch=$!\n"
        "wait $saf_cmd; saf_rc=$?\n"
        "kill $saf_watch 2>/dev/null\n"
        "exit $saf_rc"
    )
    return sh(script)


def path_arg(path: str) -> str:
    """A path for a shell command: quoted, except that a leading ~/ still means the home
    folder (quoting would otherwise keep the tilde literal). This is saf's one rule for
    `~/`: `~/x` becomes `"$HOME"/'x'`, whoever wrote the path."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + quote(path[2:])
    return quote(path)


def program(command: str) -> str:
    """A program the inventory names (a node's `python`) for a shell command line.

    The inventory may give a command with arguments (`/usr/bin/env python3`), so each word is
    its own argument; each is quoted by `path_arg`, so `~/saf-venv/bin/python` runs the
    python under the node user's home. Every place saf runs the node's python goes through
    here (the agent, `saf nodes`, doctor, Ray, serving, `{node.python}` in recipes)."""
    return " ".join(program_words(command))


def program_words(command: str) -> list[str]:
    """`program(command)` word by word (the first is the program to look for)."""
    return [path_arg(word) for word in program_argv(command)] or [quote(command)]


def program_argv(command: str) -> list[str]:
    """The words of `command` as sh splits them, unquoted, for an argv run without a shell
    (a leading `~/` is left for the node to expand). The inventory's loader refuses a python
    with an unbalanced quote; any other text with one is a single program name."""
    try:
        return shlex.split(command)
    except ValueError:
        return [command]


# A secrets file read by sh just before the program starts, where nothing else reads one
# (launchd has no EnvironmentFile; a model server is started by a plain command): `set -a`
# exports what the file assigns, a missing file stops it with exit 78, then sh `exec`s the
# program with its arguments unchanged.
_ENV_FILE_SHIM = 'set -a; . "$0" || exit 78; set +a; exec "$@"'


def with_env_file(env_file: str, argv: list[str]) -> list[str]:
    """`argv` run with the variables of `env_file` (a KEY="VALUE" file on the node) exported."""
    return ["/bin/sh", "-c", _ENV_FILE_SHIM, env_file, *argv]
