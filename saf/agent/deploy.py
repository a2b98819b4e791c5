"""Putting the agent on a node: once per content hash, into the user's cache folder."""

from __future__ import annotations

import shlex

from saf.agent.build import AgentBundle
from saf.connect.base import Connector
from saf.shell import join, quote


def remote_path_expr(bundle: AgentBundle) -> str:
    """The zipapp's path on the node as a shell word ($HOME expanded by the node's shell)."""
    return '"$HOME"/' + quote(bundle.remote)


async def ensure(conn: Connector, bundle: AgentBundle, *, timeout: float = 30.0) -> bool:
    """Upload the agent unless the node already has this exact build. True when uploaded."""
    check = await conn.run(f"test -s {remote_path_expr(bundle)}", timeout=timeout)
    if check.exit_status == 0:
        return False
    await conn.put(bundle.path, "~/" + bundle.remote, mode=0o644)
    return True


def start_command(python: str, bundle: AgentBundle, *, interval: float,
                  cluster_host: str | None = None) -> str:
    """The shell command that starts the agent with the node's Python. `exec` so the agent is
    the channel's process itself: no shell left behind, and its stdin is the channel's."""
    # `python` may be a command with arguments ("/usr/bin/env python3"): quote each word.
    args = [join(shlex.split(python)), remote_path_expr(bundle), "--interval", quote(f"{interval:g}")]
    if cluster_host:
        args += ["--cluster-host", quote(cluster_host)]
    return "exec " + " ".join(args)
