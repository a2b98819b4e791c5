"""The processes a test started, found in its own process tree, and stopped with their children.

Other sessions share this machine, and earlier tests may have left things behind: a test never
counts processes machine-wide. It looks below a root it owns (its own `Popen`, its own served
instance, or this pytest process, whose descendants include the in-process SSH servers and the
sshd's this suite starts), narrowed by a pattern that names what it started (a unique tag, its
temp folder). sshd is started as a child subreaper (`subreaper`), so a command that outlives
its SSH session stays in that tree instead of being handed to PID 1 out of sight.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from pathlib import Path

import psutil

# Run argv as a child subreaper (prctl PR_SET_CHILD_SUBREAPER = 36): the mark survives exec,
# so orphans of what argv forks are re-parented to argv's process, not to PID 1.
_SUBREAPER = ("import ctypes, os, sys; ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0); "
              "os.execv(sys.argv[1], sys.argv[1:])")


def subreaper(argv: list[str]) -> list[str]:
    """`argv` run as a child subreaper (see the module's docstring)."""
    return [sys.executable, "-c", _SUBREAPER, *argv]


def tree(root: int | None = None) -> list[psutil.Process]:
    """`root` and its live descendants; without `root`, this pytest process's descendants.

    Walked by parent pid alone: psutil's `children()` also drops a child whose start time
    reads earlier than its parent's (its guard against a reused pid), and on a fresh CI
    machine it once dropped a child just started by this very process."""
    try:
        top = psutil.Process(root)
    except psutil.NoSuchProcess:
        return []
    below: dict[int, list[int]] = {}
    for proc in psutil.process_iter(["ppid"]):
        below.setdefault(proc.info["ppid"], []).append(proc.pid)
    found, stack, seen = [], [top.pid], {top.pid}
    while stack:
        for pid in below.get(stack.pop(), []):
            if pid in seen:
                continue
            seen.add(pid)
            stack.append(pid)
            try:
                found.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                continue
    return ([top] if root is not None else []) + found


def cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def matching(pattern: str, root: int | None = None) -> list[psutil.Process]:
    """The live processes of `tree(root)` whose command line matches the regex `pattern`."""
    regex = re.compile(pattern)
    return [p for p in tree(root) if alive(p) and regex.search(cmdline(p))]


def describe(procs: list[psutil.Process]) -> list[str]:
    """'PID command line' of each, for an assertion's message."""
    return [f"{p.pid} {cmdline(p)}" for p in procs]


def descendants_matching(pattern: str) -> list[str]:
    """Command lines of this test process's descendants (its SSH servers and what they run)
    that match the regex `pattern`."""
    return describe(matching(pattern))


def under(folder: Path, pattern: str = "", root: int | None = None) -> list[psutil.Process]:
    """The live processes of `tree(root)` that match `pattern` and name `folder` (a test's own
    temp folder or node homes) in their command line."""
    return [p for p in matching(pattern, root) if str(folder) in cmdline(p)]


def kill_tree(procs: list[psutil.Process], grace: float = 5.0) -> list[psutil.Process]:
    """SIGTERM `procs` and all their descendants (gathered first: a parent's death orphans
    its children out of reach), SIGKILL what is left after `grace` seconds. Returns what
    would not die (a process stuck in the kernel)."""
    everyone: dict[int, psutil.Process] = {}
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            for p in [proc, *proc.children(recursive=True)]:
                everyone[p.pid] = p
    targets = list(everyone.values())
    for p in targets:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, left = psutil.wait_procs(targets, timeout=grace)
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    _, left = psutil.wait_procs(left, timeout=5)
    return [p for p in left if alive(p)]


def stop(popen: subprocess.Popen, grace: float = 5.0) -> None:
    """A test's own subprocess and everything it started, ended (for a `finally:`)."""
    if popen.poll() is None:
        with contextlib.suppress(psutil.Error):
            kill_tree([psutil.Process(popen.pid)], grace)
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(5)


def sleepers(tag: str) -> list[psutil.Process]:
    """This test's `sleep TAG` processes (on the nodes of its SSH servers). A unique TAG
    (e.g. "913.<uuid>") matches the remote command and never the saf client, whose argv holds
    it inside a longer string."""
    return matching(rf"^sleep {re.escape(tag)}$")
