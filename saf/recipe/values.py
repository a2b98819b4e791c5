"""What a value in a recipe may be: one grammar per kind of value, and nothing else decides.

A recipe's text reaches a node in one of two forms. A *command* field (`run`, `check`, a wait's
`command`, a reboot's `command`) is shell: every value put into it is quoted
(saf.recipe.substitute), so it arrives as written. Every other field is a *value* a kind puts
somewhere itself: an argument of apt-get, a line of a sysctl.d file, a kernel argument, a
port. Quoting for the shell is not enough there (`2-3/;e touch F;#` is one harmless shell word
and a sed program that runs a command; `-oAPT::...` is one shell word and an apt-get option),
so each value field names its grammar here and is refused, naming the step, the field and the
node, before anything runs when its value does not fit it. A recipe's own `[vars]` may name a
grammar too (`isolcpus = { default = "", type = "cpulist" }`), for the values its shell steps
put into other languages (sed, awk, a kernel command line).

Every grammar accepts the empty string (the kind says what empty means), and none accepts a
NUL, a line break where a line is wanted, or text that is not UTF-8 (a surrogate from a
command line that was not).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable

from saf.numbers import port_problem

Grammar = Callable[[str], str | None]
"""grammar(value) -> why the value does not fit ('is not ...'), or None when it does."""

COMMAND = "command"  # the form of a shell field: substituted values are quoted, not checked


def text_problem(value: str) -> str | None:
    """Why `value` cannot travel at all: a NUL, or not UTF-8 (a lone surrogate)."""
    if "\0" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8 text"
    return None


def _pattern(regex: str, what: str) -> Grammar:
    compiled = re.compile(regex)

    def check(value: str) -> str | None:
        if value == "" or compiled.fullmatch(value):
            return None
        return f"is not {what}, {value!r}"
    return check


def _line(value: str) -> str | None:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return f"must be one line of text without control characters, not {value!r}"
    return None


def _args(value: str) -> str | None:
    try:
        shlex.split(value)
    except ValueError as exc:  # "No closing quotation": an unbalanced ' or "
        return f"has unbalanced quoting ({exc}): {value!r}"
    return None


def _port(value: str) -> str | None:
    return None if value.strip() == "" else port_problem(value)


def _words(one: Grammar, what: str) -> Grammar:
    def check(value: str) -> str | None:
        for word in value.split():
            if one(word):
                return f"is not {what}: {word!r}"
        return None
    return check


# A CPU list as the kernel reads one (Documentation/admin-guide/kernel-parameters.rst,
# "cpu lists"): N, N-M, N-M:used/group, comma-separated; or "all".
_CPUS = r"(\d{1,5}(-\d{1,5}(:\d{1,5}/\d{1,5})?)?|N)(,(\d{1,5}(-\d{1,5}(:\d{1,5}/\d{1,5})?)?|N))*"
# Debian policy 5.6.1: a package name is lower-case letters, digits, + - . and at least two
# characters, starting with a letter or digit; apt also takes NAME:ARCH and NAME=VERSION.
_PACKAGE = r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?"

GRAMMARS: dict[str, Grammar] = {
    "text": lambda value: None,
    "line": _line,
    "word": _pattern(r"[A-Za-z0-9_.+:@%,/=~][A-Za-z0-9_.+:@%,/=~-]*",
                     "one word of letters, digits and _ . + : @ % , / = ~ - (not starting "
                     "with -)"),
    "bool": _pattern(r"(?i)true|false|yes|no|on|off|1|0", "true or false"),
    "count": _pattern(r"\d{1,12}", "a whole number"),
    "number": _pattern(r"\d{1,12}(\.\d{1,9})?", "a number like 5 or 0.5"),
    "port": _port,
    "package": _pattern(_PACKAGE, "a Debian package name (lower-case letters, digits, "
                        "+ - ., optionally :ARCH or =VERSION)"),
    "packages": _words(_pattern(_PACKAGE, ""), "a Debian package name"),
    "pip": _words(_pattern(r"[A-Za-z0-9][A-Za-z0-9_.\[\],<>=!~*-]*", ""),
                  "a pip requirement (NAME, NAME==VERSION, NAME[extra])"),
    "ppa": _pattern(r"ppa:[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*", "ppa:OWNER/NAME"),
    "interface": _pattern(r"(?!\.\.?$)[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,14}",
                          "a network interface name (up to 15 letters, digits, _ . : @ -)"),
    "service": _pattern(r"[A-Za-z0-9_][A-Za-z0-9_.:@\\-]{0,255}", "a service (unit) name"),
    "user": _pattern(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?", "a user name"),
    "module": _pattern(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}", "a kernel module name"),
    "cpulist": _pattern(r"all|((nohz|domain|managed_irq),)*" + _CPUS,
                        "a CPU list like 2-7,10 (the kernel's cpu-list grammar)"),
    "cmdline": _words(_pattern(r"[A-Za-z0-9_.-]+(=[A-Za-z0-9_.,:/+@-]*)?", ""),
                      "a kernel argument (key or key=value)"),
    "host": _pattern(r"[A-Za-z0-9_.:\[\]%][A-Za-z0-9_.:\[\]%-]*", "a host name or address"),
    "args": _args,
    "path": _pattern(r"[^\0]+", "a path"),
    # A path written into a file of another language (/etc/exports, /etc/fstab), where a
    # blank or a line break would start another field or entry.
    "abspath": _pattern(r"/[A-Za-z0-9_.,+@%/~-]*", "an absolute path of letters, digits and "
                        "_ . , + @ % / ~ - (no blanks)"),
    "counts": _words(_pattern(r"\d{1,12}", ""), "a whole number"),
    "subnet": _pattern(r"[0-9A-Fa-f.:]+(/\d{1,3})?", "an address or subnet like 10.0.0.0/24"),
}


def value_problem(grammar: str, value: str) -> str | None:
    """Why `value` does not fit `grammar` (one of GRAMMARS, or COMMAND), or None."""
    bad = text_problem(value)
    if bad or grammar == COMMAND:
        return bad
    return GRAMMARS[grammar](value)
