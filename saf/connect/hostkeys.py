"""Host-key checking the OpenSSH way: known_hosts decides, and saf never trusts silently.

When a node's key is unknown or has changed, saf fetches the key it presents and refuses with
its fingerprint and the command that would trust it (`saf trust NODE`).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from saf.errors import HostKeyError
from saf.inventory.model import Node

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


@dataclass(frozen=True)
class Endpoint:
    """Where a node's SSH server really is, after ~/.ssh/config (HostName, Port, User)."""

    host: str
    port: int
    user: str | None
    key_alias: str | None = None
    jump: str | None = None  # ProxyJump: "[user@]host[:port]", comma-separated hops
    identity_files: tuple[str, ...] = ()  # IdentityFile entries, as the config writes them

    @property
    def pattern(self) -> str:
        """The host field of a known_hosts line for this endpoint."""
        name = self.key_alias or self.host
        return name if self.port == 22 else f"[{name}]:{self.port}"


# path -> ((inode, mtime, size), the file parsed): see `parsed`.
_PARSED: dict[str, tuple[tuple[int, int, int], asyncssh.SSHKnownHosts]] = {}


def parsed(path: str) -> asyncssh.SSHKnownHosts:
    """The known_hosts file at `path`, parsed once per version of the file.

    Given a path, asyncssh reads and parses the file again for every connection, inside the
    event loop: fifty nodes that share one known_hosts (hundreds of lines, hashed ones
    included) would parse it fifty times while every other handshake waits. A file that
    changed since (`saf trust` replaces it, `ssh-keygen -R` rewrites it) is read again.
    Called from a worker thread (it reads a file); two threads may both parse a new version,
    which costs one parse more and nothing else."""
    status = os.stat(path)
    version = (status.st_ino, status.st_mtime_ns, status.st_size)
    known = _PARSED.get(path)
    if known is None or known[0] != version:
        known = (version, asyncssh.read_known_hosts(path))
        _PARSED[path] = known
    return known[1]


def known_hosts_file(node: Node) -> Path:
    return Path(node.known_hosts or DEFAULT_KNOWN_HOSTS).expanduser()


def config_paths(node: Node) -> list[str] | tuple[()]:
    """The OpenSSH config files to read: the inventory's, else asyncssh's default
    (~/.ssh/config)."""
    return [os.path.expanduser(node.ssh_config)] if node.ssh_config else ()


def resolve(node: Node) -> Endpoint:
    """The node's endpoint as the OpenSSH config makes it. Only the config is read: no key is
    loaded here (client_keys=None), the connection loads its own."""
    options = asyncssh.SSHClientConnectionOptions(
        host=node.host, port=node.port or (), username=node.user or (),
        config=config_paths(node), client_keys=None, agent_path=None)
    jump = options.tunnel if isinstance(options.tunnel, str) and \
        options.tunnel.lower() != "none" else None
    found = options.config.get("IdentityFile")  # a list of paths; asyncssh types it object
    identities = tuple(str(f) for f in found) if isinstance(found, list) else ()
    return Endpoint(options.host, options.port, options.username,
                    options.host_key_alias, jump, identities)


async def fetch_host_key(node: Node, tunnel: asyncssh.SSHClientConnection | None = None,
                         ) -> asyncssh.SSHKey | None:
    """The key the node's server presents, without trusting it; through `tunnel` (the
    connection to its last jump host, saf.connect.jumps) when it has one. Never through a
    ProxyJump asyncssh would read itself: that hop's key would not be checked here."""
    end = resolve(node)
    return await asyncssh.get_server_host_key(
        end.host, end.port, config=config_paths(node), tunnel=tunnel,
        options=asyncssh.SSHClientConnectionOptions(connect_timeout=node.connect_timeout))


def fingerprint(key: asyncssh.SSHKey) -> str:
    return key.get_fingerprint("sha256")


def recorded_keys(node: Node) -> list[asyncssh.SSHKey]:
    """Keys known_hosts already holds for this node's endpoint."""
    path = known_hosts_file(node)
    if not path.is_file():
        return []
    end = resolve(node)
    known = asyncssh.read_known_hosts(str(path))
    trusted, *_ = known.match(end.key_alias or end.host, "",
                              end.port if end.port != 22 else None)
    return list(trusted)


async def diagnose(node: Node, tunnel: asyncssh.SSHClientConnection | None = None,
                   ) -> HostKeyError:
    """Explain why the host key was not accepted: unknown or changed, with the fingerprint
    (fetched through `tunnel`, the node's jump host, when it has one)."""
    try:
        key = await fetch_host_key(node, tunnel)
    except (OSError, asyncssh.Error):
        key = None
    fp = fingerprint(key) if key else None
    changed = bool(recorded_keys(node))
    message = explain(fp, changed, known_hosts_file(node), node.name)
    return HostKeyError(node.name, message, fingerprint=fp, changed=changed)


def explain(fp: str | None, changed: bool, path: Path, trust: str) -> str:
    """What an unknown or changed key means and the `saf trust` line that records it."""
    if changed:
        return (f"host key has CHANGED (now {fp or 'unknown'}); this may be a reinstall or "
                f"someone in the middle. If you expect it, run `saf trust {trust}` to "
                f"replace the entry in {path}")
    return (f"host key is not known (fingerprint {fp or 'unknown'}); check it, then "
            f"run `saf trust {trust}` to record it in {path}")


def record(node: Node, key: asyncssh.SSHKey) -> Path:
    """Write the node's key into its known_hosts, replacing older entries for the same host.
    The file is replaced atomically, so a crash never leaves half of it."""
    path = known_hosts_file(node)
    end = resolve(node)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    kept: list[str] = []
    if path.is_file():
        for line in path.read_text().splitlines():
            hosts = line.split(" ", 1)[0].split(",") if line and not line.startswith("#") else []
            if end.pattern in hosts:
                continue
            kept.append(line)
    key_text = key.export_public_key("openssh").decode().strip()
    kept.append(f"{end.pattern} {key_text}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".known_hosts.")
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(kept) + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return path
