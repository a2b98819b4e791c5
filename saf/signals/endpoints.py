"""Signal endpoints: what a user may write, and how each is reached.

- ``tcp://HOST:PORT`` (and ``ipc://``, ``inproc://``): handed to ZeroMQ as written, except that
  a HOST that names an inventory node becomes that node's host. An IPv6 HOST is written in
  brackets: ``tcp://[::1]:5555``.
- ``ssh://NODE:PORT`` (``ssh://NODE`` means port 5555): the port on the node, reached through
  an SSH port forward over the node's own connection, so nothing is exposed on the LAN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from saf.errors import SafError
from saf.inventory.address import AddressError, host_port, parse_address
from saf.inventory.model import Inventory

DEFAULT_PORT = 5555
SCHEMES = ("tcp", "ipc", "inproc", "ssh")
_ENDPOINT = re.compile(r"^(?P<scheme>[a-z]+)://(?P<rest>.+)$")


class EndpointError(SafError):
    exit_code = 2
    title = "Bad signal endpoint"


@dataclass(frozen=True)
class Endpoint:
    """A parsed endpoint. For ssh, `node` names the node and `port` the port on it."""

    text: str
    scheme: str
    host: str = ""
    port: int = DEFAULT_PORT
    node: str | None = None

    @property
    def via_ssh(self) -> bool:
        return self.scheme == "ssh"

    def zmq_url(self, local_port: int | None = None) -> str:
        """The address ZeroMQ connects to (for ssh, the local end of the forward)."""
        if self.via_ssh:
            if local_port is None:
                raise ValueError("an ssh endpoint needs its forward's local port")
            return f"tcp://127.0.0.1:{local_port}"
        if self.scheme == "tcp":
            return f"tcp://{host_port(self.host, self.port)}"
        return self.text


def parse_endpoint(text: str, inventory: Inventory | None = None, *,
                   ssh: bool = False) -> Endpoint:
    """Parse an endpoint. With `ssh`, a ``tcp://NODE:PORT`` naming an inventory node is
    reached through SSH instead (the --ssh flag)."""
    match = _ENDPOINT.match(text.strip())
    if not match or match.group("scheme") not in SCHEMES:
        raise EndpointError(f"signal endpoint {text!r} must look like tcp://HOST:PORT or "
                            "ssh://NODE:PORT (or ipc://PATH)")
    scheme, rest = match.group("scheme"), match.group("rest")
    if scheme in ("ipc", "inproc"):
        return Endpoint(text, scheme)
    try:
        address = parse_address(rest)
    except AddressError as exc:
        raise EndpointError(f"signal endpoint {text!r}: expected HOST:PORT after "
                            f"{scheme}:// ({exc})") from None
    if address.user:
        raise EndpointError(f"signal endpoint {text!r}: a signal endpoint has no user "
                            f"({address.user}@); write {scheme}://"
                            f"{host_port(address.host, address.port or DEFAULT_PORT)}")
    host, port = address.host, address.port or DEFAULT_PORT
    names = set(inventory.names) if inventory else set()
    if scheme == "ssh" or (ssh and host in names):
        if inventory is None:
            raise EndpointError(f"signal endpoint {text!r} goes through SSH to a node, but "
                                "there is no inventory (pass --inventory)")
        if host not in names:
            raise EndpointError(f"signal endpoint {text!r}: no node named {host!r} in "
                                f"{inventory.path or 'the inventory'} (nodes: "
                                f"{', '.join(inventory.names)})")
        return Endpoint(text, "ssh", host="127.0.0.1", port=port, node=host)
    if inventory is not None and host in names:
        node = inventory.node(host)
        host = "127.0.0.1" if node.connection == "local" else node.host
    return Endpoint(text, "tcp", host=host, port=port)


def bind_url(text: str) -> str:
    """Where a publisher binds: a tcp or ipc endpoint; `tcp://*` must be asked for by name."""
    match = _ENDPOINT.match(text.strip())
    if not match or match.group("scheme") not in ("tcp", "ipc", "inproc"):
        raise EndpointError(f"a publisher binds to tcp://HOST:PORT or ipc://PATH, not {text!r}")
    return text.strip()
