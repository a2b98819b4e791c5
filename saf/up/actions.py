"""Restarting one part of the declared cluster on one node, for the cockpit's Cluster screen
(through saf.cockpit.actions, or `saf serve`'s hub, which refuses it to read-only sessions).

A service (or a model kept by its unit `saf-model-NAME`) is restarted (or stopped) by its
manager, as installed: `systemctl restart`, `launchctl kickstart -k`, or saf's supervisor
stopped and started again on the spec it already holds (the Models screen's stop and restart
of such a server come here through saf.up.kept_models). A detached model server is restarted
with the command line on record (saf.inference.cluster.restart). Bringing one part up or down
is saf.up.part's: that part of `saf up` / `saf down`, run by the recipe runner.
"""

from __future__ import annotations

from saf.cluster import detached
from saf.cluster.service import Found, Run, commands_stop, read_found
from saf.cluster.units import ServiceSpec
from saf.errors import SafError
from saf.fleet import Fleet
from saf.inference import cluster as served
from saf.inference.node import Target, list_servers
from saf.shell import quote


class ActionRefused(SafError):
    title = "Not done"


async def locate(run: Run, name: str, python: str) -> Found:
    """Service `name` as installed on a node, under the manager that keeps it (as
    saf.cluster.service.read_status looks: the system's first when saf is not root)."""
    return await read_found(run, ServiceSpec(name, ("/bin/true",)), python)


def restart_commands(name: str, found: Found, python: str) -> list[str]:
    spec = ServiceSpec(name, ("/bin/true",))
    manager = found.manager
    if manager.kind == "detached":
        # The supervisor's folder holds the spec saf up wrote: started again as it is.
        return detached.install(spec, python, write=False)
    if manager.systemd:
        return [f"{manager.ctl()} restart {spec.unit}"]
    return [f"launchctl kickstart -k {manager.domain()}/{spec.label}"]


async def restart_service(run: Run, name: str, python: str) -> str:
    found = await locate(run, name, python)
    if found.installed is None:
        raise ActionRefused(f"service {name} is not installed here: run `saf up` to put it "
                            "in place")
    for command in restart_commands(name, found, python):
        result = await run(command)
        if not result.ok:
            raise ActionRefused(f"restarting {name}: `{command}` exited {result.exit_status}: "
                                f"{(result.stderr or result.stdout).strip()[-300:]}")
    return f"restarted {name} ({found.manager.describe()})"


async def stop_service(run: Run, name: str, python: str) -> str:
    """Stop service `name` where it is installed, leaving it installed (`saf up` starts it
    again); what was done."""
    found = await locate(run, name, python)
    if found.installed is None:
        raise ActionRefused(f"service {name} is not installed here")
    for command in commands_stop(ServiceSpec(name, ("/bin/true",)), found, python):
        result = await run(command)
        if not result.ok:
            raise ActionRefused(f"stopping {name}: `{command}` exited {result.exit_status}: "
                                f"{(result.stderr or result.stdout).strip()[-300:]}")
    return f"stopped {name} ({found.manager.describe()})"


async def restart_part(fleet: Fleet, node: str, kind: str, name: str, port: int = 0) -> str:
    """Restart part `name` (a service, or model `name` on `port`) on `node`; what was done."""
    if node not in fleet.inventory.names:
        raise ActionRefused(f"no node {node!r} in this cluster")
    conn = fleet.connector(node)
    python = conn.node.python
    if kind == "service":
        return f"{node}: " + await restart_service(conn.run, name, python)
    if kind == "model":
        unit = await locate(conn.run, f"model-{name}", python)
        if unit.installed is not None:
            return f"{node}: " + await restart_service(conn.run, f"model-{name}", python)
        servers = await list_servers(Target.of(conn), probe=False)
        endpoint = next((e for e in servers.endpoints if e.port == port), None)
        if endpoint is None:
            raise ActionRefused(f"model {name}: no server saf started on {node}:{port} to "
                                "restart: run `saf up` to start it")
        started = await served.restart(fleet, endpoint)
        if started.status == "failed":
            raise ActionRefused(f"{node}: model {name} on port {port} did not start again: "
                                f"{started.why}")
        return f"{node}: restarted model {name} on port {port} ({started.status})"
    raise ActionRefused(f"restarting {kind} {quote(name)} is `saf up`'s work: run "
                        f"`saf up --on {quote(node)}`")
