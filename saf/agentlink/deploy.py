"""Putting the agent on a node: once per content hash, into the user's cache folder."""

from __future__ import annotations

from saf.agentlink.build import AgentBundle
from saf.agents import protocol
from saf.connect.base import Connector
from saf.shell import SHA256, program, quote

CHECK_TIMEOUT = 30.0  # seconds the node may take to hash its copy of the agent


def remote_path_expr(bundle: AgentBundle) -> str:
    """The zipapp's path on the node as a shell word ($HOME expanded by the node's shell)."""
    return '"$HOME"/' + quote(bundle.remote)


async def ensure(conn: Connector, bundle: AgentBundle) -> bool:
    """Upload the agent unless the node already has this exact build. True when uploaded.

    The node's copy is checked by its hash, not by its name: a file cut short by a full disk
    or changed by hand would otherwise be started forever and fail with a SyntaxError.
    The upload goes under a temporary name and is renamed into place."""
    path = remote_path_expr(bundle)
    check = await conn.run(f"{SHA256}; [ -f {path} ] && $H {path}; true", timeout=CHECK_TIMEOUT)
    if check.stdout.split()[:1] == [bundle.sha256]:
        return False
    await conn.put(bundle.path, "~/" + bundle.remote, mode=0o644)
    return True


def start_command(python: str, bundle: AgentBundle, *, interval: float,
                  cluster_host: str | None = None) -> str:
    """The shell command that starts the agent with the node's Python. `exec` so the agent is
    the channel's process itself: no shell left behind, and its stdin is the channel's."""
    args = [program(python), remote_path_expr(bundle),
            "--interval", quote(f"{interval:g}")]
    if cluster_host:
        args += ["--cluster-host", quote(cluster_host)]
    return "exec " + " ".join(args)


def too_old(version: str) -> bool:
    """Whether a node's Python (`3.8.10`, as `platform.python_version()` writes it) is older
    than the agent runs on. A version that cannot be read is not called too old."""
    parts = version.split(".")[:2]
    if len(parts) < 2 or not all(part.isdigit() for part in parts):
        return False
    return (int(parts[0]), int(parts[1])) < protocol.MIN_PYTHON


def python_fix(node: str) -> str:
    """What to do about a node whose Python is older than the agent's: the words every face
    shows after the version."""
    needs = ".".join(map(str, protocol.MIN_PYTHON))
    return (f"`saf run python-match --on {node}` installs a newer one, or set the node's "
            f"python = \"...\" in the inventory to a Python {needs} or newer")
