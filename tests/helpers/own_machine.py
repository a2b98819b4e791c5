"""A command run as if on a machine of its own: its own process table (a PID namespace, /proc
mounted for it), its own /tmp and /dev/shm (empty tmpfs in a mount namespace of its own), the
rest of the filesystem shared. NetnsCluster(own_machine=True) runs each node's SSH server so.

Why: network namespaces alone share one /tmp and one process table, and programs that find
their own processes by command line (Ray's `ray stop`, saf's ray-down sweep of "every process
of the temp folder") or keep their files in a fixed folder (Ray's /tmp/ray) then see, and
stop, the other nodes' as if they were their own. No two real machines do that.

    wrap(argv, keep=[tmp_path])   # the argv to run (after `ip netns exec NS`)
    inner_pid(pid)                 # the pid a host process has inside its namespace

`keep`: folders under /tmp the node must still see (the test's own tree: homes, models,
scripts): each is bound back at its own path on the node's fresh /tmp.

The wrapped command's first process is this module's `main`, PID 1 of the namespace: it does
the mounts, starts argv as its child, reaps every orphan handed to it (a real init's work: Ray
daemons outlive the `ray start` that made them), passes SIGTERM/SIGINT to argv, and exits
with argv's status; the kernel then kills whatever is left in the namespace.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
UNSHARE = shutil.which("unshare")
NSENTER = shutil.which("nsenter")


def own_machine_skip_reason() -> str | None:
    """Why a node cannot have a machine of its own here, or None when it can."""
    if UNSHARE is None or NSENTER is None:
        return "needs util-linux's unshare and nsenter"
    if os.geteuid() != 0:
        return "needs root for PID and mount namespaces"
    return None


def wrap(argv: list[str], keep: list[Path]) -> list[str]:
    """`argv` run in a PID and mount namespace of its own, under this module's init. The
    repository and this Python's environment are kept too: a checkout under /tmp (a fresh
    clone made there, its .venv inside) would otherwise vanish under the node's new /tmp."""
    assert UNSHARE is not None
    wanted = {str(Path(path).resolve()) for path in [*keep, REPO, Path(sys.prefix)]}
    kept = [a for path in sorted(wanted, key=len) for a in ("--keep", path)]
    return [UNSHARE, "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private",
            sys.executable, "-m", "tests.helpers.own_machine", *kept, "--", *argv]


def enter(init_pid: int, argv: list[str]) -> list[str]:
    """`argv` run inside the namespaces (network, mount, PID) of the node whose init runs as
    `init_pid` (its pid here)."""
    assert NSENTER is not None
    return [NSENTER, "-t", str(init_pid), "-n", "-m", "-p", "--", *argv]


def inner_pid(pid: int) -> int | None:
    """The pid that process `pid` (a pid here) has in its own PID namespace, or None when it
    is gone. A process of this namespace has the same pid in both."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return pid


MS_BIND = 4096


def _mount(source: str, target: str, fstype: str | None = None, flags: int = 0,
           data: str | None = None) -> None:
    """mount(2) itself: mount(8) would resolve /proc/self/fd/N to the path it names, which
    the tmpfs hides by then, where the kernel follows the link to the folder held open."""
    libc = ctypes.CDLL(None, use_errno=True)
    done = libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                      ctypes.c_ulong(flags), data.encode() if data else None)
    if done != 0:
        err = ctypes.get_errno()
        raise SystemExit(f"own_machine: mount {source} on {target}: {os.strerror(err)}")


def _make_private(keep: list[str]) -> None:
    # Hold the kept folders open first: the tmpfs about to cover /tmp hides them. Shorter
    # paths first (wrap sorts them), so a folder kept inside another is bound onto it.
    held = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in keep]
    _mount("own-tmp", "/tmp", "tmpfs", 0, "mode=1777")
    _mount("own-shm", "/dev/shm", "tmpfs", 0, "mode=1777")
    for path, fd in held:
        if path == "/tmp" or path.startswith("/tmp/"):
            os.makedirs(path, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND)
        os.close(fd)


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keep", action="append", default=[])
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    parsed = parser.parse_args(args)
    argv = parsed.argv[1:] if parsed.argv[:1] == ["--"] else parsed.argv
    _make_private(parsed.keep)
    child = subprocess.Popen(argv, pass_fds=(), close_fds=True)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
    while True:  # reap every child: argv, and the orphans handed to PID 1
        try:
            pid, status = os.wait()
        except ChildProcessError:
            sys.exit(1)
        except InterruptedError:
            continue
        if pid == child.pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            code = child.returncode
            sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
