"""Each filesystem's space, from the agent: the real collector on this machine against df's own
arithmetic (os.statvfs), which mounts count (not the pseudo ones, a device once), through the
frame gate, and the alert the dashboard raises when one runs low."""

from __future__ import annotations

import os

from saf.agents import protocol
from saf.agents.collectors.filesystems import FilesystemCollector, measure, parse_mounts
from saf.agents.context import Context

from saf.metrics import events as mev
from saf.metrics.frames import read_frame
from saf.metrics.store import MetricsStore
from saf.metrics.thresholds import Level, Thresholds
from saf.metrics.view import alerts, node_view

# A GPU node's /proc/self/mounts, as Ubuntu 22.04 writes it with a models share over NFS, a
# docker container's overlay, a snap, a bind mount of the root device, and a path with a space.
MOUNTS = r"""sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
udev /dev devtmpfs rw,nosuid,relatime,size=263948716k,nr_inodes=65987179,mode=755 0 0
devpts /dev/pts devpts rw,nosuid,noexec,relatime,gid=5,mode=620,ptmxmode=000 0 0
tmpfs /run tmpfs rw,nosuid,nodev,noexec,relatime,size=52797836k,mode=755 0 0
/dev/nvme0n1p2 / ext4 rw,relatime 0 0
securityfs /sys/kernel/security securityfs rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /dev/shm tmpfs rw,nosuid,nodev 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0
/dev/loop0 /snap/core20/2105 squashfs ro,nodev,relatime,errors=continue 0 0
/dev/nvme0n1p1 /boot/efi vfat rw,relatime,fmask=0077,dmask=0077 0 0
/dev/nvme1n1 /mnt/scratch\040disk xfs rw,relatime,attr2,inode64,noquota 0 0
nas:/export/models /mnt/models nfs4 rw,relatime,vers=4.2,rsize=1048576,hard,proto=tcp 0 0
overlay /var/lib/docker/overlay2/abc/merged overlay rw,relatime,lowerdir=/x 0 0
/dev/nvme0n1p2 /var/snap/lxd/common/shmounts ext4 rw,relatime 0 0
"""


def test_which_mounts_count() -> None:
    assert parse_mounts(MOUNTS) == [
        ("/", "/dev/nvme0n1p2", "ext4"),
        ("/boot/efi", "/dev/nvme0n1p1", "vfat"),
        ("/mnt/models", "nas:/export/models", "nfs4"),
        ("/mnt/scratch disk", "/dev/nvme1n1", "xfs"),
    ]


def test_this_machine_as_df_counts_it() -> None:
    collector = FilesystemCollector(Context())
    assert collector.start() is None
    found = {item["mount"]: item for item in collector.collect()}
    assert "/" in found
    st = os.statvfs("/")
    root = found["/"]
    assert root["total_bytes"] == st.f_blocks * st.f_frsize
    # free is what an ordinary user may write (df's Avail), not counting root's reserve.
    assert root["free_bytes"] <= (st.f_bfree * st.f_frsize)
    assert 0 < root["used_bytes"] < root["total_bytes"]
    assert measure("/")[0] == root["total_bytes"]
    assert not [m for m, item in found.items()
                if item["fstype"] in ("proc", "sysfs", "tmpfs", "cgroup", "cgroup2", "overlay")]
    devices = [item["device"] for item in found.values()]
    assert len(devices) == len(set(devices))  # a device mounted twice counts once
    # Through the frame gate, as the link reads it.
    frame = {"type": "sample", "seq": 0, "time": 1.0, "interval": 1.0,
             "filesystems": list(found.values())}
    _, typed = read_frame(protocol.encode(frame))
    assert [f.mount for f in typed.filesystems] == sorted(found)


def _view_with(free: int, total: int = 1000 * 2**30):
    store = MetricsStore()
    store.add_node("a")
    store.apply(mev.AgentStatus(node="a", status=mev.NodeStatus.UP, time=1.0))
    store.apply(mev.SampleReceived(node="a", raw="", time=1.0, frame={
        "type": "sample", "time": 1.0, "interval": 1.0, "filesystems": [
            {"mount": "/", "device": "/dev/sda1", "fstype": "ext4", "total_bytes": total,
             "used_bytes": total - free, "free_bytes": free},
            {"mount": "/mnt/models", "device": "nas:/m", "fstype": "nfs4",
             "missing": {"space": "no answer within 0.5 s"}}]}))
    return node_view(store, "a", 1.5)


def test_a_filesystem_running_low_is_an_alert() -> None:
    th = Thresholds()
    assert alerts([_view_with(200 * 2**30)], th) == []
    [warn] = alerts([_view_with(80 * 2**30)], th)
    assert (warn.level, warn.text) == (Level.WARN, "a / 80.0G free (8%)")
    [alert] = alerts([_view_with(20 * 2**30)], th)
    assert (alert.level, alert.text) == (Level.ALERT, "a / 20.0G free (2%)")
    view = _view_with(20 * 2**30)
    assert [f.missing for f in view.filesystems] == ["", "no answer within 0.5 s"]
