"""Putting the agent on a node: once per content hash, into the user's cache folder."""

from __future__ import annotations

from saf.agentlink.build import AgentBundle
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
