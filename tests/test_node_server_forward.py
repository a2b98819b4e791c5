"""saf's demo/test SSH server (saf.demo.node_server) forwards a port to loopback and to the
address it listens on (the node's own: saf reaches a Ray head's dashboard, which listens on the
head's cluster address, through such a forward), and refuses any other destination."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from saf.demo.node_server import NodeServer

OWN = "127.0.0.2"  # a loopback address, but not one the server counts as "loopback"


async def _echo_server(host: str) -> asyncio.Server:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"echo:" + await reader.readline())
        await writer.drain()
        writer.close()

    return await asyncio.start_server(echo, host, 0)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[NodeServer, asyncssh.SSHClientConnection]]:
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = NodeServer("alpha", tmp_path / "home", host=OWN,
                        authorized_keys=[key.convert_to_public()])
    await server.start()
    try:
        conn = await asyncssh.connect(OWN, server.port, client_keys=[key], known_hosts=None)
        try:
            yield server, conn
        finally:
            conn.close()
            await conn.wait_closed()
    finally:
        await server.stop()


async def _through(conn: asyncssh.SSHClientConnection, host: str, port: int) -> bytes:
    listener = await conn.forward_local_port("127.0.0.1", 0, host, port)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.get_port())
        writer.write(b"hi\n")
        await writer.drain()
        said = await reader.read()
        writer.close()
        return said
    finally:
        listener.close()


async def test_a_forward_reaches_the_servers_own_address(node) -> None:
    _, conn = node
    target = await _echo_server(OWN)
    try:
        port = target.sockets[0].getsockname()[1]
        assert await _through(conn, OWN, port) == b"echo:hi\n"
    finally:
        target.close()


async def test_a_forward_elsewhere_is_refused(node) -> None:
    _, conn = node
    target = await _echo_server("127.0.0.3")
    try:
        port = target.sockets[0].getsockname()[1]
        assert await _through(conn, "127.0.0.3", port) == b""  # the channel was refused
    finally:
        target.close()
