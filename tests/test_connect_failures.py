"""One connect is one try, and its failure says why by type: refused, timeout, auth, dns, lost
(a server that drops the handshake, redialled as the handshake gate allows)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncssh
import pytest

from saf.connect.failures import failure_of
from saf.connect.handshakes import HandshakeGate
from saf.connect.ssh import SSHConnector
from saf.errors import ConnectError, Failure
from saf.inventory import load_inventory
from saf.inventory.model import Node
from tests.helpers.servers import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
def alpha(asyncssh_cluster) -> Node:
    """A node whose keys and known_hosts are real; tests point it elsewhere."""
    return load_inventory(asyncssh_cluster.inventory).node("alpha")


class TcpServer:
    """A plain TCP server on loopback that counts the connections it accepts."""

    def __init__(self, handler: Handler) -> None:
        self.accepted = 0
        self._handler = handler
        self.port = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        await self._handler(reader, writer)


async def _hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """What MaxStartups does: close the connection before the SSH banner."""
    writer.close()


async def _say_nothing(reader: asyncio.StreamReader, _: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client gives up


@contextlib.asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[TcpServer]:
    tcp = TcpServer(handler)
    server = await asyncio.start_server(tcp._accept, "127.0.0.1", 0)
    tcp.port = server.sockets[0].getsockname()[1]
    async with server:
        yield tcp


@pytest.fixture
async def hangs_up() -> AsyncIterator[TcpServer]:
    async with serving(_hang_up) as tcp:
        yield tcp


@pytest.fixture
async def silent() -> AsyncIterator[TcpServer]:
    async with serving(_say_nothing) as tcp:
        yield tcp


async def failure(connector: SSHConnector) -> ConnectError:
    with pytest.raises(ConnectError) as info:
        await connector.connect()
    await connector.close()
    return info.value


async def test_a_closed_port_is_refused(alpha: Node) -> None:
    err = await failure(SSHConnector(dataclasses.replace(alpha, port=free_port())))
    assert err.reason is Failure.REFUSED
    assert "refused" in err.detail


async def test_a_server_that_never_answers_is_a_timeout(alpha: Node, silent: TcpServer) -> None:
    node = dataclasses.replace(alpha, port=silent.port, connect_timeout=0.5)
    err = await failure(SSHConnector(node))
    assert err.reason is Failure.TIMEOUT
    assert "within 0.5 s" in err.detail
    assert silent.accepted == 1


async def test_a_key_the_server_does_not_know_is_auth(alpha: Node, tmp_path: Path) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    stranger.write_private_key(tmp_path / "stranger")
    connector = SSHConnector(alpha, client_keys=[str(tmp_path / "stranger")],
                             extra_options={"agent_path": None})
    assert (await failure(connector)).reason is Failure.AUTH


async def test_a_name_that_does_not_resolve_is_dns(alpha: Node) -> None:
    err = await failure(SSHConnector(dataclasses.replace(alpha, host="nosuch.invalid")))
    assert err.reason is Failure.DNS
    assert "nosuch.invalid" in err.detail


async def test_a_dropped_handshake_is_redialled_then_lost(alpha: Node,
                                                          hangs_up: TcpServer) -> None:
    """A server that hangs up before the banner (as MaxStartups does) is dialled again as
    many times as the gate says, then the one try fails as `lost`."""
    node = dataclasses.replace(alpha, port=hangs_up.port)
    err = await failure(SSHConnector(node, handshakes=HandshakeGate(redials=2)))
    assert err.reason is Failure.LOST
    assert hangs_up.accepted == 3


async def test_callers_that_ask_together_share_one_try(alpha: Node,
                                                       hangs_up: TcpServer) -> None:
    """Three callers of a connector to a failing server: one try, the same failure for all;
    asked again afterwards, it tries again (once)."""
    connector = SSHConnector(dataclasses.replace(alpha, port=hangs_up.port),
                             handshakes=HandshakeGate(redials=0))
    results = await asyncio.gather(*(connector.connect() for _ in range(3)),
                                   return_exceptions=True)
    assert [getattr(r, "reason", r) for r in results] == [Failure.LOST] * 3
    assert hangs_up.accepted == 1
    assert (await failure(connector)).reason is Failure.LOST
    assert hangs_up.accepted == 2


@pytest.mark.parametrize(("exc", "expected"), [
    # asyncssh's disconnect code decides, whatever the message says.
    (asyncssh.ConnectionLost("whatever"), Failure.LOST),
    (asyncssh.DisconnectError(asyncssh.DISC_TOO_MANY_CONNECTIONS, "busy"), Failure.LOST),
    (asyncssh.DisconnectError(asyncssh.DISC_PROTOCOL_ERROR, "connection reset, closed"),
     Failure.ERROR),
    (asyncssh.PermissionDenied("closed"), Failure.AUTH),
    (asyncssh.HostKeyNotVerifiable("reset"), Failure.HOSTKEY),
    # The OS's errno decides for socket errors.
    (ConnectionResetError(errno.ECONNRESET, "refused"), Failure.LOST),
    (BrokenPipeError(errno.EPIPE, "x"), Failure.LOST),
    (ConnectionRefusedError(errno.ECONNREFUSED, "reset"), Failure.REFUSED),
    (TimeoutError(errno.ETIMEDOUT, "x"), Failure.TIMEOUT),
    (asyncio.TimeoutError(), Failure.TIMEOUT),  # noqa: UP041 - what asyncio code spells
    (socket.gaierror(socket.EAI_NONAME, "x"), Failure.DNS),
    (OSError(errno.EHOSTUNREACH, "connection refused"), Failure.UNREACHABLE),
    (OSError(errno.ENETUNREACH, "x"), Failure.UNREACHABLE),
    (asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "timeout"), Failure.ERROR),
    (ConnectError("n", "auth", "x"), Failure.AUTH),
])
def test_failures_are_told_by_type_code_and_errno_not_text(exc: BaseException,
                                                           expected: Failure) -> None:
    """Each message here says something else: only the type, code or errno may decide."""
    assert failure_of(exc) is expected


def test_a_failure_reads_and_prints_as_its_word() -> None:
    err = ConnectError("n", "refused", "x")
    assert err.reason is Failure.REFUSED
    assert err.reason == "refused"
    assert f"{err.reason}" == \
        "refused"
    with pytest.raises(ValueError, match="'sulking' is not a valid Failure"):
        ConnectError("n", "sulking", "x")
