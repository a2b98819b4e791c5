"""Connectors against real SSH servers (asyncssh's and OpenSSH's) and the local machine."""

from __future__ import annotations

import asyncio
import getpass
import os
import sys

import pytest

from saf.agentlink.lines import Line, LineFramer
from saf.connect.local import LocalConnector
from saf.errors import ConnectError
from saf.fleet import Fleet
from saf.inventory import load_inventory, parse_inventory
from saf.shell import quote
from tests.helpers.procs import sleepers
from tests.helpers.servers import AsyncsshServers, ClientKeys, loopback_has_ipv6, write_inventory

NASTY = """it's a "test" with $(touch /tmp/saf-pwned) `id` ; & | > * ~ \\ $HOME and spaces  """


def fleet_of(cluster) -> Fleet:
    return Fleet(load_inventory(cluster.inventory))


def local_connector() -> LocalConnector:
    inv = parse_inventory({"nodes": [{"name": "here", "host": "localhost"}]})
    return LocalConnector(inv.nodes[0])


@pytest.fixture(params=["ssh", "local"])
async def conn(request, asyncssh_cluster):
    """A connector to one node: over SSH, or the local subprocess connector."""
    if request.param == "local":
        yield local_connector()
        return
    async with fleet_of(asyncssh_cluster) as fleet:
        yield fleet.connector("alpha")


async def test_fan_out_streams_lines_and_keeps_each_exit_status(cluster):
    lines: list[tuple[str, str, str]] = []
    async with fleet_of(cluster) as fleet:
        nodes = await fleet.select("all")
        codes = {"alpha": 0, "beta": 3, "gamma": 42}

        async def one(conn):
            def line(stream, text):
                lines.append((conn.node.name, stream, text))
            return await conn.run(f"echo out-{conn.node.name}; echo err-{conn.node.name} >&2; "
                                  f"exit {codes[conn.node.name]}", on_output=line)

        results = await fleet.each(nodes, one)
    assert {n: r.exit_status for n, r in results.items()} == codes
    for name in codes:
        assert (name, "stdout", f"out-{name}") in lines
        assert (name, "stderr", f"err-{name}") in lines
        assert results[name].stdout == f"out-{name}\n"


async def test_quoted_values_reach_the_node_literally(cluster, tmp_path):
    async with fleet_of(cluster) as fleet:
        result = await fleet.connector("beta").run(f"printf '%s' {quote(NASTY)}")
    assert result.stdout == NASTY + "\n" or result.stdout == NASTY
    assert not await asyncio.to_thread(os.path.exists, "/tmp/saf-pwned")


async def test_input_line_reaches_the_command_but_not_the_process_list(conn):
    result = await conn.run('IFS= read -r secret; printf "%s" "$secret" | wc -c; '
                            'ps -eo args | grep -c "[s]3cret-pw" || true',
                            input="s3cret-pw")
    count, seen = result.stdout.split()
    assert count == "9"
    assert seen == "0"


async def _gone(tag: str, within: float = 5.0) -> bool:
    for _ in range(int(within / 0.1)):
        if not sleepers(tag):
            return True
        await asyncio.sleep(0.1)
    return False


async def test_timeout_stops_the_remote_command_and_its_children(cluster, sleep_tag):
    tag = sleep_tag
    async with fleet_of(cluster) as fleet:
        result = await fleet.connector("alpha").run(f"sleep {tag} & sleep {tag}; wait",
                                                    timeout=1.0)
    assert result.timed_out
    assert result.exit_status is None
    assert await _gone(tag), "remote sleep outlived the timeout"


async def test_cancel_stops_the_remote_command(cluster, sleep_tag):
    tag = sleep_tag
    async with fleet_of(cluster) as fleet:
        task = asyncio.create_task(fleet.connector("gamma").run(f"sleep {tag}"))
        for _ in range(50):
            if sleepers(tag):
                break
            await asyncio.sleep(0.1)
        assert sleepers(tag), "the remote command never started"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await _gone(tag), "remote sleep outlived the cancelled run"


async def test_local_connector_cancel_and_timeout(sleep_tag):
    tag = sleep_tag
    result = await local_connector().run(f"sleep {tag}", timeout=0.5)
    assert result.timed_out
    assert await _gone(tag)


async def test_put_uploads_atomically_with_mode(conn, tmp_path):
    source = tmp_path / "payload.bin"
    source.write_bytes(os.urandom(200_000))
    target = f"saf-test-{os.getpid()}/sub/payload.bin"
    await conn.put(source, "~/" + target, mode=0o640)
    result = await conn.run(f'cd "$HOME"; sha256sum {quote(target)}; '
                            f'stat -c %a {quote(target)}; ls {quote(target)}.saf-part 2>&1; '
                            f'rm -r saf-test-{os.getpid()}')
    import hashlib
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    lines = result.stdout.splitlines()
    assert lines[0].split()[0] == digest
    assert lines[1] == "640"
    assert "No such file" in lines[2]


async def test_start_gives_a_long_lived_process_with_streams(conn):
    proc = await conn.start(f"{quote(sys.executable)} -u -c "
                            + quote("import sys\nfor l in sys.stdin: print(l.upper(), end='')"))
    proc.write("hello agent\n")
    assert await asyncio.wait_for(proc.readline(), 10) == "HELLO AGENT\n"
    await proc.stop()
    assert await asyncio.wait_for(proc.wait(), 5) == 0


async def test_forward_reaches_a_port_on_the_node(cluster):
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, fleet_of(cluster) as fleet:
        fwd = await fleet.connector("beta").forward(port)
        assert fwd.local_port != port
        reader, writer = await asyncio.open_connection("127.0.0.1", fwd.local_port)
        writer.write(b"ping\n")
        assert await asyncio.wait_for(reader.readline(), 5) == b"ping\n"
        writer.close()
        await fwd.close()


async def _echo(reader, writer):
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()


async def test_pooled_connection_is_reused_and_reconnects_after_loss(asyncssh_cluster):
    async with fleet_of(asyncssh_cluster) as fleet:
        conn = fleet.connector("alpha")
        first = await conn.run("echo $PPID")
        await conn.run("true")
        assert conn._conn is not None
        held = conn._conn
        held.close()
        await held.wait_closed()
        for _ in range(50):
            if not conn.connected:
                break
            await asyncio.sleep(0.05)
        again = await conn.run("echo back")
        assert again.stdout == "back\n"
        assert first.ok
        assert conn._conn is not held


def test_proxyjump_hops_are_verified_like_the_node(tmp_path):
    """A node behind a ProxyJump in the OpenSSH config is reached through the jump host, and
    the jump host's key is checked against the same known_hosts."""
    keys = ClientKeys(tmp_path / "operator")
    servers = AsyncsshServers(tmp_path, keys, ["jump", "target"])
    try:
        keys.ssh_config.write_text(
            f"Host bastion\n  HostName 127.0.0.1\n  Port {servers.port('jump')}\n"
            f"Host inner\n  HostName 127.0.0.1\n  Port {servers.port('target')}\n"
            "  ProxyJump bastion\n")
        inventory = load_inventory(write_inventory(tmp_path / "saf.toml", keys,
                                                   [{"name": "t", "host": "inner"}]))

        async def through() -> str:
            async with Fleet(inventory) as fleet:
                return (await fleet.connector("t").run("echo $SAF_NODE")).stdout

        assert asyncio.run(through()) == "target\n"

        # Forget the jump host's key: the hop is refused, and the error names it.
        lines = keys.known_hosts.read_text().splitlines()
        keys.known_hosts.write_text("\n".join(
            line for line in lines if f"]:{servers.port('jump')} " not in line) + "\n")
        with pytest.raises(ConnectError) as info:
            asyncio.run(through())
        assert info.value.reason == "hostkey"
        assert "jump host bastion" in str(info.value)
    finally:
        servers.stop()


@pytest.mark.skipif(not loopback_has_ipv6(), reason="the loopback has no IPv6 address (::1)")
async def test_proxyjump_through_an_ipv6_jump_host(tmp_path):
    """`ProxyJump user@[::1]:PORT` reaches the jump host at ::1 on PORT (the hop used to be
    split at its first colon), with the hop's key checked as `[::1]:PORT` in known_hosts."""
    keys = ClientKeys(tmp_path / "operator")
    jump = AsyncsshServers(tmp_path / "jump", keys, ["jump"], host="::1")
    target = AsyncsshServers(tmp_path / "target", keys, ["target"])
    try:
        keys.ssh_config.write_text(
            f"Host inner\n  HostName 127.0.0.1\n  Port {target.port('target')}\n"
            f"  ProxyJump {getpass.getuser()}@[::1]:{jump.port('jump')}\n")
        inventory = load_inventory(write_inventory(tmp_path / "saf.toml", keys,
                                                   [{"name": "t", "host": "inner"}]))
        async with Fleet(inventory) as fleet:
            result = await fleet.connector("t").run("echo $SAF_NODE")
        assert result.stdout == "target\n"
        assert jump.servers["jump"].host == "::1"
    finally:
        jump.stop()
        target.stop()


async def test_long_lived_process_stderr_is_kept_after_it_ends(conn):
    """stderr is read all along (an unread stream would stall the program, and asyncssh drops
    what is unread once the channel closes): after the end, its last words are there."""
    proc = await conn.start("i=0; while [ $i -lt 3000 ]; do echo noise-$i >&2; i=$((i+1)); "
                            "done; echo last words >&2; exit 3", stdin=False)
    assert await asyncio.wait_for(proc.wait(), 20) == 3
    text = await proc.stderr_text()
    assert text.endswith("last words\n")


async def test_long_lines_come_whole_or_measured_through_the_local_connector():
    """asyncio's stream limit is 64 KiB: longer lines come in parts, which the agent link's
    framer joins (200 KB, multi-byte characters split anywhere) or measures (8 MB)."""
    script = ("import sys; w = sys.stdout.write; w('é' * 100_000 + '\\n'); "
              "w('x' * 8_000_000 + '\\n'); w('end\\n'); w('cut')")
    process = await local_connector().start(f"{sys.executable} -c {quote(script)}")
    lines = LineFramer(process.readline)
    got = [await lines.next() for _ in range(5)]
    assert got[0].text == "é" * 100_000 + "\n"
    assert (got[1].bad, got[1].size) == ("too_long", 8_000_001)
    assert got[2].text == "end\n"
    assert (got[3].bad, got[3].size) == ("truncated", 3)
    assert got[4] == Line()
    await process.stop()
