"""Binary remote processes (`start_bytes`) and local rsync over saf's own connection
(saf.connect.rsync), against both SSH servers and the local connector."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path

import pytest

from saf.connect.local import LocalConnector
from saf.connect.rsync import local_rsync, remote, run_rsync
from saf.fleet import Fleet
from saf.inventory import load_inventory, parse_inventory
from tests.helpers import procs
from tests.helpers.procs import descendants_matching

needs_rsync = pytest.mark.skipif(local_rsync() is None,
                                 reason="rsync is not installed (apt-get install rsync)")
ODD = "a dir with 'quotes' \"and\" $(no) spaces"


def local_connector() -> LocalConnector:
    inv = parse_inventory({"nodes": [{"name": "here", "host": "localhost"}]})
    return LocalConnector(inv.nodes[0])


async def echo_bytes(conn) -> None:
    """Every byte value, 2 MiB of it, through `cat` and back: nothing decoded or lost, and the
    writer waits while the channel is full instead of buffering without end."""
    payload = bytes(range(256)) * (8 * 1024)
    proc = await conn.start_bytes("cat")
    received = bytearray()

    async def reader() -> None:
        while data := await proc.read():
            received.extend(data)

    task = asyncio.create_task(reader())
    for i in range(0, len(payload), 100_000):
        await proc.write(payload[i:i + 100_000])
    proc.write_eof()
    await task
    assert await proc.wait() == 0
    assert bytes(received) == payload
    await proc.stop()


async def test_start_bytes_carries_every_byte_over_ssh(cluster) -> None:
    async with Fleet(load_inventory(cluster.inventory)) as fleet:
        await echo_bytes(fleet.connector("alpha"))


async def test_start_bytes_carries_every_byte_locally() -> None:
    await echo_bytes(local_connector())


async def test_start_bytes_stop_ends_the_process(cluster, marker: str) -> None:
    async with Fleet(load_inventory(cluster.inventory)) as fleet:
        proc = await fleet.connector("alpha").start_bytes(f"sleep 300 # {marker}")
        await proc.stop(grace=1.0)
    await asyncio.sleep(0.5)
    assert procs.matching(re.escape(marker)) == []  # in this test's own process tree


def tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "b.txt").write_text("nested\n")
    (src / f"{ODD}.txt").write_text("odd name\n")
    return src


@needs_rsync
@pytest.mark.parametrize("via", ["ssh", "local"])
async def test_rsync_rides_the_connection(via, asyncssh_cluster, openssh_cluster,
                                          tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder with an odd name goes to a destination with an odd name, over the connector;
    the shim's socket folder is gone afterwards and no shim process is left."""
    src = tree(tmp_path)
    dest = tmp_path / "out" / ODD
    dest.parent.mkdir()
    # saf's temporary folders go to one of this test's own (short: it holds a UNIX socket),
    # so another session's saf-rsync-* folders in /tmp are not taken for this one's leftovers.
    own_tmp = Path(tempfile.mkdtemp(prefix="sr"))
    monkeypatch.setattr(tempfile, "tempdir", str(own_tmp))
    if via == "local":
        result = await run_rsync(local_connector(), ["-r", str(src) + "/", remote(str(dest))])
    else:
        async with Fleet(load_inventory(openssh_cluster.inventory)) as fleet:
            result = await run_rsync(fleet.connector("beta"),
                                     ["-r", "-i", str(src) + "/", remote(str(dest))])
    assert result.ok, result.stderr
    assert result.remote_status == 0
    assert (dest / f"{ODD}.txt").read_text() == "odd name\n"
    assert (dest / "sub" / "b.txt").read_text() == "nested\n"
    assert await asyncio.to_thread(os.listdir, own_tmp) == []  # the shim's sockets are gone
    await asyncio.to_thread(own_tmp.rmdir)
    assert descendants_matching("rsync_shim") == []


@needs_rsync
async def test_rsync_failure_on_the_node_is_reported(cluster, tmp_path: Path) -> None:
    src = tree(tmp_path)
    async with Fleet(load_inventory(cluster.inventory)) as fleet:
        result = await run_rsync(fleet.connector("alpha"),
                                 ["-r", str(src) + "/", remote("/proc/not-writable/x/")])
    assert not result.ok
    assert result.exit_status not in (0, None)
    assert "/proc/not-writable/x" in result.stderr  # the node's rsync's own words


@needs_rsync
async def test_cancelling_rsync_leaves_nothing(asyncssh_cluster, tmp_path: Path) -> None:
    """Cancelled mid-transfer: local rsync, the shim and the node's rsync all end."""
    big = tmp_path / "big"
    big.write_bytes(os.urandom(1 << 20) * 64)
    async with Fleet(load_inventory(asyncssh_cluster.inventory)) as fleet:
        task = asyncio.create_task(run_rsync(
            fleet.connector("alpha"), ["--bwlimit=2m", str(big), remote(str(tmp_path / "c"))]))
        await asyncio.sleep(1.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await asyncio.sleep(0.5)
    assert descendants_matching(f"rsync_shim|rsync.*{tmp_path}|rsync --server") == []
