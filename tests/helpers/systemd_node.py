"""A node with a real systemd as PID 1, for tests: a minimal Debian tree booted in its own
namespaces, reached over SSH on a veth pair like any other node.

    from tests.helpers.systemd_node import SystemdNode, build_tree, systemd_skip_reason

    tree = build_tree()                      # debootstrap, once: cached by its package list
    with SystemdNode(tmp_path, tree) as node:
        node.write("/root/beat.py", "...")   # into the node's own layer (while it is off)
        node.boot()                          # PID 1 is systemd; sshd answers on node.address
        node.saf("up")                       # the saf CLI, with node.inventory_path
        node.exec(["systemctl", "is-active", "ssh"])  # a command inside the node
        node.poweroff(); node.boot()         # a reboot: the same disk, booted again

The tree (`build_tree`): `debootstrap --variant=minbase` of Debian bookworm with systemd,
dbus, libpam-systemd (logind: lingering), openssh-server and python3 (the agent needs 3.9),
under the cache folder (`SAF_SYSTEMD_NODE_CACHE`, else `systemd-node` in the user's cache,
~/.cache/saf-tests/ on Linux), keyed by the package list: built once per machine (about 1.5
minutes and 310 MB with the mirror near), shared read-only by every node after.

A node (`SystemdNode`) writes nothing into the tree: it boots an overlay (the tree below, the
node's own upper layer in its folder above), so what a test installs stays in that node and a
second boot of it (a reboot) finds its disk as the first left it. The boot, checked before it
runs (the root is the overlay under the node's folder, never `/`):

    unshare --mount --propagation private      # mounts die with the node
      mount tmpfs on /run/systemd/nspawn       # nspawn's locks stay in this namespace
      mount overlay (tree + upper) on FOLDER/root
      systemd-nspawn --boot --directory=FOLDER/root --network-namespace-path=/run/netns/NS ...

systemd-nspawn gives systemd its own mount, PID, UTS, IPC and cgroup namespaces, its own /tmp,
/run and /dev, and /sys and /proc/sys read-only: nothing the node's boot (tmpfiles, its
shutdown's killing spree) does reaches this machine. Its network namespace is made here
first: `eth0` at 10.X.Y.1, a veth pair to this process's end at 10.X.Y.254 (names carry this
process's id, as tests/helpers/netns.py's do). Its cgroups are one folder per node
(`safsd<pid>k<k>` in each cgroup hierarchy), so each node's processes are found there.
`poweroff` asks systemd to power off (SIGRTMIN+4 to the node's PID 1, recorded at boot) and
waits for nspawn to end; `close` (and the `with` exit) powers off if needed, kills what is left
in the node's cgroups (only this node's processes are there), removes them, the namespace and
the link. Namespaces and cgroups left by a test process that died (SIGKILL) are removed by the
next node made on the machine.

Needs root, debootstrap (to build), systemd-nspawn (Debian's systemd-container), unshare,
nsenter and ip: `systemd_skip_reason()` says why not, for pytest.skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncssh
import platformdirs

from tests.helpers.netns import IP, _free_subnet
from tests.helpers.servers import ClientKeys, write_inventory

SUITE = "bookworm"
VARIANT = "minbase"
# libgomp1: llama.cpp's OpenMP runtime, for a model server run from a Python bound in.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "libpam-systemd", "openssh-server", "python3",
            "iproute2", "procps", "libgomp1")
# Bump when _prepare changes what a built tree holds: the cache key changes with it.
TREE_VERSION = 1
MIRROR = os.environ.get("SAF_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PREFIX = "safsd"  # namespaces and cgroups: safsd<pid>k<k>
CGROUP_ROOT = Path("/sys/fs/cgroup")
REPO = Path(__file__).resolve().parents[2]
_counter = itertools.count()
_BUILT = ".saf-built"


class BootError(RuntimeError):
    """The node did not boot (or build): the message holds the command and its output."""


def _tools() -> dict[str, str | None]:
    return {name: shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}", f"/sbin/{name}")
         if os.path.exists(p)), None)
        for name in ("debootstrap", "systemd-nspawn", "unshare", "nsenter")}


def systemd_skip_reason(*, need_build: bool = True) -> str | None:
    """Why a systemd node cannot be booted here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root to boot a systemd node (namespaces, mounts, cgroups)"
    if IP is None:
        return "needs `ip` (iproute2) for the node's network namespace"
    tools = _tools()
    missing = [n for n, path in tools.items() if path is None
               and (need_build or n != "debootstrap")]
    if missing:
        hint = {"debootstrap": "apt-get install debootstrap",
                "systemd-nspawn": "apt-get install systemd-container"}
        return "needs " + ", ".join(f"{n} ({hint.get(n, 'util-linux')})" for n in missing)
    if not _cgroup_hierarchies():
        return f"no cgroup hierarchy mounted under {CGROUP_ROOT} (systemd needs one)"
    return None


# -- the tree --------------------------------------------------------------------------------
def cache_folder() -> Path:
    """Where built trees are kept: the user's cache (as pip keeps its wheels), so a new
    checkout on the same machine, a fresh clone for CI among them, boots the tree an earlier
    run built instead of spending a minute or two on debootstrap again."""
    return Path(os.environ.get("SAF_SYSTEMD_NODE_CACHE")
                or Path(platformdirs.user_cache_dir("saf-tests")) / "systemd-node")


def tree_key() -> str:
    what = json.dumps([SUITE, VARIANT, sorted(PACKAGES), TREE_VERSION])
    return hashlib.sha256(what.encode()).hexdigest()[:12]


def _mounts_under(folder: Path) -> list[str]:
    """Mount points at or below `folder` in this mount namespace (deepest first)."""
    found = []
    prefix = str(folder.resolve())
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def _remove_tree(folder: Path) -> None:
    """Delete a half-built tree: never through a mount (debootstrap mounts /proc and /sys in
    its target and may leave them when it fails)."""
    for point in _mounts_under(folder):
        subprocess.run(["umount", "-l", point], capture_output=True)
    left = _mounts_under(folder)
    if left:
        raise BootError(f"{folder}: cannot unmount {left}; not deleting it")
    shutil.rmtree(folder)


def build_tree(cache: Path | None = None, timeout: float = 1800) -> Path:
    """The Debian tree (built now unless the cache has it): its path."""
    cache = cache or cache_folder()
    cache.mkdir(parents=True, exist_ok=True)
    final = cache / f"debian-{SUITE}-{tree_key()}"
    with open(cache / f"{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; the others wait and reuse it
        if (final / _BUILT).exists():
            return final
        building = cache / f"{final.name}.building"
        if building.exists():
            _remove_tree(building)
        debootstrap = _tools()["debootstrap"]
        if debootstrap is None:
            raise BootError("debootstrap is not installed (apt-get install debootstrap)")
        argv = [debootstrap, f"--variant={VARIANT}", "--include=" + ",".join(PACKAGES), SUITE,
                str(building), MIRROR]
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            with contextlib.suppress(BootError, OSError):
                _remove_tree(building)
            raise BootError(f"{' '.join(argv)}: exit {done.returncode}:\n"
                            f"{(done.stdout + done.stderr)[-3000:]}")
        if _mounts_under(building):
            raise BootError(f"debootstrap left mounts under {building}: {_mounts_under(building)}")
        _prepare(building)
        (building / _BUILT).write_text(json.dumps(
            {"suite": SUITE, "packages": PACKAGES, "seconds": round(time.monotonic() - started)}))
        building.rename(final)
        return final


def _prepare(tree: Path) -> None:
    """What every node shares: no host keys of its own (each node gets one), sshd by key only,
    no package cache."""
    for key in (tree / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (tree / "etc/ssh/sshd_config.d/saf-test.conf").write_text(
        "HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUseDNS no\n")
    for deb in (tree / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()


# -- cgroups and stale nodes -----------------------------------------------------------------
def _cgroup_hierarchies() -> list[Path]:
    """Where a node's cgroup folders go: the cgroup2 root (unified), or on a v1/hybrid host
    the name=systemd hierarchy and the unified one beside it."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    return [p for p in (CGROUP_ROOT / "systemd", CGROUP_ROOT / "unified")
            if (p / "cgroup.procs").exists()]


def _cgroup_pids(folder: Path) -> list[int]:
    pids: list[int] = []
    for procs in folder.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            pids += [int(p) for p in procs.read_text().split()]
    return pids


def _remove_cgroup(folder: Path) -> None:
    """Kill what is left in `folder` (a node's own cgroup: only its processes) and remove it."""
    for _ in range(50):
        pids = [p for p in _cgroup_pids(folder) if p != os.getpid()]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()),
                      key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            sub.rmdir()
    with contextlib.suppress(OSError):
        folder.rmdir()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> None:
    """Remove the namespaces and cgroups of nodes whose test process no longer exists."""
    assert IP is not None
    listed = subprocess.run([IP, "netns", "list"], capture_output=True, text=True).stdout
    for ns in (line.split()[0] for line in listed.splitlines() if line.strip()):
        found = re.fullmatch(rf"{PREFIX}(\d+)k\d+", ns)
        if found and not _pid_alive(int(found.group(1))):
            pids = subprocess.run([IP, "netns", "pids", ns], capture_output=True, text=True)
            for pid in (int(p) for p in pids.stdout.split() if p.isdigit()):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run([IP, "netns", "del", ns], capture_output=True)
    for hierarchy in _cgroup_hierarchies():
        for folder in hierarchy.glob(f"{PREFIX}*"):
            found = re.fullmatch(rf"{PREFIX}(\d+)k\d+", folder.name)
            if found and not _pid_alive(int(found.group(1))):
                _remove_cgroup(folder)


# -- the node --------------------------------------------------------------------------------
def _ip(*args: str, ns: str | None = None) -> None:
    assert IP is not None
    argv = [IP, "-n", ns, *args] if ns else [IP, *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise BootError(f"{' '.join(argv)}: {done.stderr.strip()}")


class SystemdNode:
    """One Debian node booted with systemd as PID 1 (see the module's docstring).

    Attributes: `name`, `address` (its eth0), `inventory_path` (reaching it as root, host key
    verified), `keys`, `folder`, `boot_seconds` (each boot's time to sshd answering)."""

    def __init__(self, folder: Path, tree: Path, name: str = "node",
                 keys: ClientKeys | None = None, binds: tuple[str, ...] = ()) -> None:
        reason = systemd_skip_reason(need_build=False)
        if reason:
            raise BootError(reason)
        if not (tree / _BUILT).exists():
            raise BootError(f"{tree} is not a built tree (build_tree makes one)")
        self.folder = Path(folder).resolve()
        self.tree = tree.resolve()
        self.name = name
        # Folders of this machine the node sees read-only at the same path (a Python with
        # its packages, a model file): nspawn's --bind-ro, nothing writable.
        self.binds = tuple(str(Path(b).resolve()) for b in binds)
        self.keys = keys or ClientKeys(self.folder / "operator")
        self.upper = self.folder / "upper"
        self.root = self.folder / "root"
        self.log = self.folder / "boot.log"
        for path in (self.upper, self.folder / "work", self.root):
            path.mkdir(parents=True, exist_ok=True)
        k = next(_counter)
        self.tag = f"{PREFIX}{os.getpid()}k{k}"
        self.netns = self.tag
        self._link = f"sd{os.getpid()}{chr(ord('a') + k % 26)}o"  # 15 characters at most
        self.subnet = _free_subnet(os.getpid() * 37 + k + 5000)
        hosts = list(self.subnet.hosts())
        self.address, self.operator_address = str(hosts[0]), str(hosts[253])
        self.cgroups = [h / self.tag for h in _cgroup_hierarchies()]
        self.boot_seconds: list[float] = []
        self._nspawn: subprocess.Popen | None = None
        self._init: int | None = None
        self._made_netns = False
        sweep_stale()
        try:
            self._network()
            for cgroup in self.cgroups:
                cgroup.mkdir()
            self._identity()
            self.inventory_path = write_inventory(
                self.folder / "saf.toml", self.keys,
                [{"name": name, "host": self.address, "port": 22}],
                user="root", python="/usr/bin/python3")
        except BaseException:
            self.close()
            raise

    def _network(self) -> None:
        prefix = self.subnet.prefixlen
        _ip("netns", "add", self.netns)
        self._made_netns = True
        _ip("link", "set", "lo", "up", ns=self.netns)
        _ip("link", "add", self._link, "type", "veth", "peer", "name", "eth0", "netns",
            self.netns)
        _ip("addr", "add", f"{self.address}/{prefix}", "dev", "eth0", ns=self.netns)
        _ip("link", "set", "eth0", "up", ns=self.netns)
        _ip("addr", "add", f"{self.operator_address}/{prefix}", "dev", self._link)
        _ip("link", "set", self._link, "up")

    def _identity(self) -> None:
        """The node's host name and host key, and the operator's key authorised for root."""
        host_key = asyncssh.generate_private_key("ssh-ed25519", comment=self.name)
        self.write("/etc/ssh/ssh_host_ed25519_key",
                   host_key.export_private_key("openssh").decode(), mode=0o600)
        public = host_key.export_public_key("openssh").decode().strip()
        self.write("/etc/ssh/ssh_host_ed25519_key.pub", public + "\n")
        self.write("/root/.ssh/authorized_keys", self.keys.public_line() + "\n", mode=0o600)
        self.write("/etc/hostname", self.name + "\n")
        with self.keys.known_hosts.open("a") as f:
            f.write(f"{self.address} {public}\n")

    # -- the disk ---------------------------------------------------------------------------
    def write(self, path: str, text: str, mode: int = 0o644) -> None:
        """Put a file on the node's disk (its own layer) while it is off."""
        if self.running:
            raise RuntimeError("write() is for a node that is off: use exec() on a running one")
        if not path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"{path!r}: an absolute path on the node")
        target = self.upper / path.lstrip("/")
        missing = []
        parent = target.parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        for folder in reversed(missing):  # the tree's own mode (/root is 0700)
            below = self.tree / folder.relative_to(self.upper)
            folder.mkdir(mode=below.stat().st_mode & 0o7777 if below.is_dir() else 0o755)
            if below.is_dir():
                os.chmod(folder, below.stat().st_mode & 0o7777)
        target.write_text(text)
        os.chmod(target, mode)

    def read(self, path: str) -> str | None:
        """A file on the running node (None: it is not there)."""
        done = self.exec(["cat", path], check=False)
        return done.stdout if done.returncode == 0 else None

    # -- booting ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._nspawn is not None and self._nspawn.poll() is None

    def boot_command(self) -> list[str]:
        """The boot, as one argv (checked: its root is this node's overlay, never `/`)."""
        tools = _tools()
        root = self.root
        if root == Path("/") or self.tree == Path("/") or self.folder not in root.parents:
            raise BootError(f"refusing to boot {root}: not an overlay under {self.folder}")
        if not (self.tree / "sbin" / "init").exists() and not (self.tree / "lib/systemd/systemd"
                                                               ).exists():
            raise BootError(f"{self.tree} has no systemd")
        for path in (self.tree, self.upper, self.folder / "work", *self.binds):
            if "," in str(path) or ":" in str(path):
                raise BootError(f"{path}: an overlay or bound path holds no ',' or ':'")
        options = f"lowerdir={self.tree},upperdir={self.upper},workdir={self.folder / 'work'}"
        nspawn = [str(tools["systemd-nspawn"]), "--quiet", "--boot", f"--directory={root}",
                  f"--machine={self.tag}", f"--hostname={self.name}",
                  f"--network-namespace-path=/run/netns/{self.netns}",
                  "--register=no", "--keep-unit", "--console=pipe", "--link-journal=no",
                  "--resolv-conf=off", "--timezone=off",
                  *(f"--bind-ro={b}" for b in self.binds)]
        script = "\n".join([
            "set -e",
            # The node's cgroups: nspawn (--keep-unit) puts the node below its own.
            *(f"echo $$ > {shlex.quote(str(c / 'cgroup.procs'))}" for c in self.cgroups),
            "mkdir -p /run/systemd/nspawn",
            "mount -t tmpfs -o mode=0755 saf-nspawn /run/systemd/nspawn",
            f"mount -t overlay saf-node -o {shlex.quote(options)} {shlex.quote(str(root))}",
            "exec " + shlex.join(nspawn)])
        return [str(tools["unshare"]), "--mount", "--propagation", "private", "--",
                "/bin/sh", "-c", script]

    def boot(self, timeout: float = 120) -> float:
        """Boot the node; return once systemd says it is up and sshd answers: the seconds."""
        if self.running:
            raise RuntimeError("the node is running")
        started = time.monotonic()
        with open(self.log, "ab") as log:
            log.write(f"\n--- boot at {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self._nspawn = subprocess.Popen(self.boot_command(), stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = started + timeout
        try:
            self._init = self._find_init(deadline)
            state = ""
            while time.monotonic() < deadline:
                state = self.exec(["systemctl", "is-system-running"], check=False,
                                  timeout=30).stdout.strip()
                if state in ("running", "degraded") and self._ssh_answers():
                    break
                self._check_alive()
                time.sleep(0.2)
            else:
                raise BootError(f"{self.name} did not come up within {timeout:.0f} s "
                                f"(systemd: {state!r}){self._log_tail()}")
            if state == "degraded":
                failed = self.exec(["systemctl", "--failed", "--no-legend", "--plain"],
                                   check=False).stdout.strip()
                raise BootError(f"{self.name} booted degraded: {failed}{self._log_tail()}")
        except BaseException:
            self._stop(timeout=10)
            raise
        took = time.monotonic() - started
        self.boot_seconds.append(took)
        return took

    def _find_init(self, deadline: float) -> int:
        """The node's PID 1 as this machine numbers it: nspawn's child whose innermost pid
        is 1."""
        assert self._nspawn is not None
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError):
                children = Path(f"/proc/{self._nspawn.pid}/task/{self._nspawn.pid}/children")
                for pid in children.read_text().split():
                    status = Path(f"/proc/{pid}/status").read_text()
                    nspid = re.search(r"^NSpid:\s+(.*)$", status, re.M)
                    if nspid and nspid.group(1).split()[-1] == "1" and \
                            len(nspid.group(1).split()) > 1:
                        return int(pid)
            time.sleep(0.05)
        raise BootError(f"{self.name}: no PID 1 appeared{self._log_tail()}")

    def _check_alive(self) -> None:
        assert self._nspawn is not None
        if self._nspawn.poll() is not None:
            raise BootError(f"{self.name}: the boot ended (exit {self._nspawn.returncode}): "
                            f"{shlex.join(self.boot_command())}{self._log_tail()}")

    def _ssh_answers(self) -> bool:
        with contextlib.suppress(OSError):
            socket.create_connection((self.address, 22), 0.5).close()
            return True
        return False

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n" + "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])
        return ""

    def poweroff(self, timeout: float = 60) -> float:
        """Power the node off as a person would (systemd stops every unit, then PID 1 ends):
        the seconds it took."""
        started = time.monotonic()
        self._stop(timeout)
        return time.monotonic() - started

    def _stop(self, timeout: float) -> None:
        proc, init = self._nspawn, self._init
        if proc is None:
            return
        if proc.poll() is None and init is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(init, signal.SIGRTMIN + 4)  # systemd: start poweroff.target
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            if init is not None:  # the node's PID 1: its whole PID namespace ends with it
                with contextlib.suppress(ProcessLookupError):
                    os.kill(init, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self._nspawn, self._init = None, None

    def reboot(self, timeout: float = 120) -> float:
        """Power off, then boot the same disk again: the boot's seconds."""
        self.poweroff()
        return self.boot(timeout)

    # -- using ------------------------------------------------------------------------------
    def exec(self, argv: list[str], *, check: bool = True, timeout: float = 60,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run argv inside the running node (all its namespaces, as root; not over SSH)."""
        if self._init is None:
            raise RuntimeError("the node is not running")
        nsenter = str(_tools()["nsenter"])
        done = subprocess.run([nsenter, f"--target={self._init}", "--all", "--", *argv],
                              input=input, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(argv)}: exit {done.returncode}: "
                               f"{done.stderr.strip()}")
        return done

    def unit(self, unit: str, *props: str) -> dict[str, str]:
        """`systemctl show -p ...` of one unit, as a dict."""
        out = self.exec(["systemctl", "show", "-p", ",".join(props), unit]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def user_unit(self, user: str, unit: str, *props: str) -> dict[str, str]:
        """`systemctl --user show -p ...` of one unit of `user`'s own manager."""
        uid = self.exec(["id", "-u", user]).stdout.strip()
        out = self.exec(["runuser", "-u", user, "--", "env", f"XDG_RUNTIME_DIR=/run/user/{uid}",
                         "systemctl", "--user", "show", "-p", ",".join(props), unit]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def add_login(self, user: str) -> Path:
        """A login user on the running node (a home, the operator's key authorised; no sudo,
        no lingering): an inventory reaching the node as that user."""
        self.exec(["useradd", "--create-home", "--shell", "/bin/bash", user])
        home = f"/home/{user}"
        self.exec(["install", "-d", "-m", "700", "-o", user, "-g", user, f"{home}/.ssh"])
        self.exec(["sh", "-c", 'cat > "$1" && chown "$2:$2" "$1" && chmod 600 "$1"', "sh",
                   f"{home}/.ssh/authorized_keys", user], input=self.keys.public_line() + "\n")
        return write_inventory(self.folder / f"saf-{user}.toml", self.keys,
                               [{"name": self.name, "host": self.address, "port": 22}],
                               user=user, python="/usr/bin/python3")

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "SAF_INVENTORY": str(self.inventory_path),
                "SAF_STATE_DIR": str(self.folder / "state"), "NO_COLOR": "1",
                "COLUMNS": "160", **extra}

    def saf(self, *args: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
        """The saf CLI, as a user runs it, against this node."""
        return subprocess.run([sys.executable, "-m", "saf", *args], env=self.env(**env),
                              capture_output=True, text=True, timeout=timeout, cwd=REPO)

    # -- cleaning up ------------------------------------------------------------------------
    def close(self) -> None:
        """Power off (killing it when it will not), remove its cgroups, namespace and link.
        Safe to call twice and after a half-made node."""
        with contextlib.suppress(Exception):
            self._stop(timeout=30)
        for cgroup in self.cgroups:
            if cgroup.exists():
                _remove_cgroup(cgroup)
        if self._made_netns:
            assert IP is not None
            subprocess.run([IP, "netns", "del", self.netns], capture_output=True)
            self._made_netns = False
        if IP is not None:
            subprocess.run([IP, "link", "del", self._link], capture_output=True)

    def __enter__(self) -> SystemdNode:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
