"""What the programs saf runs on a node share: a tool run with a timeout, who listens on TCP
ports, and a file written whole or not at all.

Stdlib only, Python 3.9, and shipped two ways: as a module of the agent's zipapp, and as text
put in place of the one line of saf.ray.node_probe and saf.inference.node_script that imports
it, when saf sends them to a node (saf.node_source), so that each of those calls stays one
`python -c`. Hence no `from __future__` import here (it would land in
the middle of those programs), and annotations that Python 3.9 can evaluate (it does, when
this runs as the agent's module): typing.Optional, not `X | None`.
"""

import os
import subprocess
from collections.abc import Collection, Iterable, Sequence
from typing import Optional


def run_tool(argv: Sequence[str], timeout: float = 5.0,
             ok: Collection[int] = (0,)) -> Optional[str]:
    """The standard output of a tool that ended within `timeout` seconds with an exit status
    in `ok`; None when it is not there, could not start, failed or took too long. Its stdin
    is /dev/null: saf's guard owns the program's stdin."""
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode in ok else None


def _listen_inodes(ports: Collection[int]) -> Optional[dict[str, int]]:
    """{socket inode: port} of the TCP sockets listening on `ports` (/proc/net/tcp and tcp6),
    or None when this node has no /proc/net/tcp to read."""
    inodes: dict[str, int] = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            if name.endswith("6"):  # a kernel without IPv6
                continue
            return None
        for line in lines:
            # "sl local_address(HEX_IP:HEX_PORT) rem_address st(0A: LISTEN) ... inode(10th)"
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":
                continue
            try:
                port = int(fields[1].rsplit(":", 1)[1], 16)
            except (IndexError, ValueError):
                continue
            if port in ports:
                inodes[fields[9]] = port
    return inodes


def _socket_owners(inodes: Collection[str]) -> list[tuple[int, str]]:
    """(pid, inode) for each process that holds one of these sockets and whose open files
    can be read (another user's cannot)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir("/proc/%s/fd" % entry)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink("/proc/%s/fd/%s" % (entry, fd))
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                found.append((int(entry), target[8:-1]))
    return found


def listening(ports: Iterable[int]) -> Optional[dict[int, list[int]]]:
    """{port: sorted pids listening on it} for each of `ports` that something listens on (TCP,
    IPv4 or IPv6); the list is empty where the owner cannot be read. None when this node
    cannot tell (Linux reads /proc; elsewhere `lsof`, and None without it)."""
    wanted = {int(p) for p in ports}
    if not wanted:
        return {}
    inodes = _listen_inodes(wanted)
    if inodes is None:
        return _listening_lsof(wanted)
    owners: dict[int, set[int]] = {port: set() for port in inodes.values()}
    if inodes:
        for pid, inode in _socket_owners(set(inodes)):
            owners[inodes[inode]].add(pid)
    return {port: sorted(pids) for port, pids in owners.items()}


def _listening_lsof(ports: Iterable[int]) -> Optional[dict[int, list[int]]]:
    found: dict[int, list[int]] = {}
    for port in sorted(ports):
        # lsof exits 1 when nothing matches: that is an answer (nobody listens), not a failure.
        out = run_tool(["lsof", "-nP", "-iTCP:%d" % port, "-sTCP:LISTEN", "-t"], timeout=10,
                       ok=(0, 1))
        if out is None:
            return None
        pids = sorted({int(p) for p in out.split() if p.isdigit()})
        if pids:
            found[port] = pids
    return found


def atomic_write(path: str, text: str, mode: int = 0o600) -> None:

    """Write `text` to `path` whole or not at all: into a file of this process's own beside
    it, flushed to disk, then renamed over it (a reader sees the old file or the new one)."""
    temp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
