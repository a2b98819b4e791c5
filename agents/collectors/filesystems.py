"""Filesystems: total, used and free bytes of each mounted filesystem that holds data.

Linux reads /proc/self/mounts; elsewhere psutil's `disk_partitions()` when importable. Each is
measured with os.statvfs, as df does: `free` is what an ordinary user may still write (the
blocks reserved for root are not counted), `used` what is taken.

Left out, as df leaves them out: pseudo and memory filesystems (proc, sysfs, cgroup, tmpfs,
devtmpfs, overlay, squashfs snaps, ...), whose figures are not disk space; a device mounted
twice (bind mounts, a container's /etc/hosts) counts once, at its shortest mount point; a
filesystem of zero size. Network filesystems (NFS, SMB, Ceph, ...) are kept, since a shared
models folder filling up matters, but statvfs on a hung server blocks: they are measured on a
thread given MOUNT_WAIT seconds, and one that does not answer is reported with `missing`
and not asked again until its thread returns.

Python 3.9, standard library only.
"""

from __future__ import annotations

import os
import threading
import time
from types import ModuleType

from ..collectors import Collector, Reading

# (total, used, free) bytes; (mount, device, fstype).
Figures = tuple[int, int, int]
Mount = tuple[str, str, str]

PSEUDO = frozenset((
    "proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "ramfs", "cgroup", "cgroup2", "overlay",
    "squashfs", "autofs", "debugfs", "tracefs", "securityfs", "pstore", "bpf", "mqueue",
    "hugetlbfs", "fusectl", "configfs", "binfmt_misc", "nsfs", "rpc_pipefs", "efivarfs",
    "selinuxfs", "fuse.lxcfs", "fuse.gvfsd-fuse", "fuse.portal", "nfsd", "iso9660", "devfs",
    "zram", "aufs", "shm", "none",
))
NETWORK = frozenset(("nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs",
                     "fuse.sshfs", "fuse.glusterfs", "fuse.ceph", "lustre", "beegfs",
                     "9p", "afpfs", "webdav"))
MOUNT_REFRESH = 30.0  # seconds between reads of the mount table
MOUNT_WAIT = 0.5      # seconds a network filesystem's statvfs may take


def _unescape(field: str) -> str:
    """/proc/mounts writes a space, tab, newline and backslash in a path as octal (\\040)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mounts(text: str) -> list[Mount]:
    """The data filesystems of a /proc/mounts text, as [(mount, device, fstype)]: pseudo
    filesystems left out, a device mounted twice kept once at its shortest mount point."""
    by_device: dict[str, Mount] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        device, mount, fstype = _unescape(fields[0]), _unescape(fields[1]), fields[2]
        if fstype in PSEUDO or not mount.startswith("/"):
            continue
        if fstype not in NETWORK and not device.startswith("/"):
            continue  # no block device behind it: another pseudo filesystem by another name
        known = by_device.get(device)
        if known is None or len(mount) < len(known[0]):
            by_device[device] = (mount, device, fstype)
    return sorted(by_device.values())


def measure(mount: str) -> Figures:
    """(total, used, free) bytes of the filesystem at `mount`, as df counts them."""
    st = os.statvfs(mount)
    size = st.f_frsize or st.f_bsize
    total = st.f_blocks * size
    used = (st.f_blocks - st.f_bfree) * size
    return total, used, st.f_bavail * size


class _Probe(threading.Thread):
    """statvfs of one network filesystem, on its own thread (it may never return)."""

    def __init__(self, mount: str) -> None:
        threading.Thread.__init__(self, name="saf-statvfs", daemon=True)
        self.mount = mount
        self.result: Figures | None = None
        self.error: OSError | None = None

    def run(self) -> None:
        try:
            self.result = measure(self.mount)
        except OSError as exc:
            self.error = exc


class FilesystemCollector(Collector):
    name = "filesystems"
    section = "filesystems"

    def start(self) -> str | None:
        self.mounts: list[Mount] = []
        self.refreshed = -MOUNT_REFRESH
        self.stuck: dict[str, _Probe] = {}  # mount -> the probe thread that has not returned
        self.psutil: ModuleType | None = None
        if self.machine.linux and self.machine.read("/proc/self/mounts") is not None:
            self.source = "/proc/self/mounts"
            return None
        psutil, why = self.machine.module("psutil")
        if psutil is None:
            return "no /proc/self/mounts and " + why
        self.psutil = psutil
        self.source = "psutil"
        return None

    def _mounts(self, now: float) -> list[Mount]:
        if now - self.refreshed < MOUNT_REFRESH:
            return self.mounts
        self.refreshed = now
        if self.psutil is not None:
            found = []
            for p in self.psutil.disk_partitions(all=False):
                if p.fstype not in PSEUDO and p.mountpoint.startswith("/"):
                    found.append((p.mountpoint, p.device, p.fstype))
            self.mounts = sorted(found)
        else:
            self.mounts = parse_mounts(self.machine.read("/proc/self/mounts") or "")
        return self.mounts

    def _measure(self, mount: str, fstype: str) -> Figures | None:
        if fstype not in NETWORK:
            return measure(mount)
        probe = self.stuck.get(mount)
        if probe is None:
            probe = _Probe(mount)
            probe.start()
            probe.join(MOUNT_WAIT)
        # One still stuck from an earlier sample is not waited for again: it would hold up
        # every sample by MOUNT_WAIT while its server is away.
        if probe.is_alive():
            self.stuck[mount] = probe
            return None
        self.stuck.pop(mount, None)
        if probe.error is not None:
            raise probe.error
        return probe.result

    def collect(self) -> list[Reading]:
        out: list[Reading] = []
        for mount, device, fstype in self._mounts(time.monotonic()):
            item: Reading = {"mount": mount, "device": device, "fstype": fstype}
            try:
                figures = self._measure(mount, fstype)
            except OSError as exc:  # unmounted since the table was read, or no permission
                item["missing"] = {"space": "statvfs failed: %s" % (exc.strerror or exc)}
                out.append(item)
                continue
            if figures is None:
                item["missing"] = {"space": "no answer within %g s (a network filesystem "
                                            "whose server does not answer)" % MOUNT_WAIT}
                out.append(item)
                continue
            total, used, free = figures
            if total <= 0:
                continue
            item["total_bytes"] = total
            item["used_bytes"] = used
            item["free_bytes"] = free
            out.append(item)
        return out
