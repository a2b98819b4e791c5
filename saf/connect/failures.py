"""What went wrong reaching a node, decided from what was raised: the exception's class,
asyncssh's `DisconnectError.code`, the OS's errno. Never from the message text, which changes
between versions and languages."""

from __future__ import annotations

import asyncio
import errno
import socket

import asyncssh

from saf.errors import ConnectError, Failure
from saf.inventory.model import Node

# A server that sheds load (OpenSSH's MaxStartups, asyncssh's max connections) closes or
# resets the connection before authentication, or says it has too many.
_DROP_CODES = {asyncssh.DISC_CONNECTION_LOST, asyncssh.DISC_TOO_MANY_CONNECTIONS}
_DROP_ERRNOS = {errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE}


def dropped(exc: BaseException) -> bool:
    """The connection was dropped under us (reset, closed, or refused for capacity)."""
    if isinstance(exc, asyncssh.DisconnectError):
        return exc.code in _DROP_CODES
    return isinstance(exc, OSError) and exc.errno in _DROP_ERRNOS


def failure_of(exc: BaseException) -> Failure:
    """The one word for an exception raised while connecting or talking to a node."""
    if isinstance(exc, ConnectError):
        return exc.reason
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):  # TimeoutError: ETIMEDOUT too
        return Failure.TIMEOUT
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return Failure.HOSTKEY
    if isinstance(exc, asyncssh.PermissionDenied):
        return Failure.AUTH
    if dropped(exc):
        return Failure.LOST
    if isinstance(exc, ConnectionRefusedError):
        return Failure.REFUSED
    if isinstance(exc, socket.gaierror):
        return Failure.DNS
    if isinstance(exc, OSError):
        return Failure.UNREACHABLE
    return Failure.ERROR


def classify(node: Node, exc: BaseException) -> ConnectError:
    """Turn whatever connecting raised into a ConnectError with its Failure and a message."""
    if isinstance(exc, ConnectError):
        return exc
    where = node.address
    failure = failure_of(exc)
    if failure is Failure.REFUSED:
        message = f"connection refused by {where}"
    elif failure is Failure.TIMEOUT:
        message = f"no answer from {where} within {node.connect_timeout:g} s"
    elif failure is Failure.AUTH:
        message = (f"authentication failed for {where} "
                   "(no accepted key; `saf keys push` installs yours)")
    elif failure is Failure.DNS:
        message = f"cannot resolve host {node.host!r}: {_os_text(exc)}"
    elif failure is Failure.LOST:
        message = f"connection to {where} dropped: {_os_text(exc)}"
    elif failure is Failure.UNREACHABLE:
        message = f"{where}: {_os_text(exc)}"
    else:
        message = f"{where}: {exc}"
    return ConnectError(node.name, failure, message)


def _os_text(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
