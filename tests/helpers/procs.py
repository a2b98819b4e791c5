"""Finding the processes a test started on a 'node' (all nodes are this machine)."""

from __future__ import annotations

import re

import psutil


def sleepers(tag: str) -> list[psutil.Process]:
    """Processes running exactly `sleep TAG`. A unique TAG (e.g. "913.<pid>") matches the
    remote command and never the saf client, whose argv holds it inside a longer string."""
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", tag]]


def descendants_matching(pattern: str) -> list[str]:
    """Command lines of this test process's own descendants (its SSH servers and what they
    run) that match the regex `pattern`: other sessions' processes on a shared machine are
    not this test's leftovers."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            line = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if re.search(pattern, line):
            found.append(f"{proc.pid} {line}")
    return found
