"""One service on one node, whatever keeps it: the facts, its status, its logs, and the plan
of what must change. The `service` step kind (saf.recipe.kinds.service) and `saf status`
both read a service through here.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from saf.cluster import detached
from saf.cluster.initsys import (
    FACTS,
    InitFacts,
    Manager,
    ManagerKind,
    ServiceStatus,
    journal_lines,
    parse_facts,
)
from saf.cluster.units import ServiceSpec, UnitError, render_launchd, render_systemd
from saf.connect.base import RunResult

Run = Callable[[str], Awaitable[RunResult]]
MARK = "saf-service-mark"


async def absolute_argv(run: Run, spec: ServiceSpec, node: str, home: str = "") -> ServiceSpec:
    """`spec` with its command as an init system needs it: words starting `~/` in the login
    user's `home` (when given), and a program that is not a path as the node's shell finds
    it (init systems search no PATH)."""
    argv = spec.argv
    if home:
        argv = tuple(home.rstrip("/") + w[1:] if w.startswith("~/") else w for w in argv)
    if argv and not argv[0].startswith("/"):
        where = (await run(f"command -v {shlex.quote(argv[0])}")).stdout.strip()
        if not where.startswith("/"):
            raise UnitError(f"service {spec.name!r}: {argv[0]!r} is not a program on {node} "
                            "(command -v found nothing)")
        argv = (where, *argv[1:])
    return dataclasses.replace(spec, argv=argv)


async def init_facts(run: Run) -> InitFacts:
    return parse_facts((await run(FACTS)).stdout)


def rendered(spec: ServiceSpec, manager: Manager) -> str:
    """What saf installs for the service under this manager (raises UnitError)."""
    if manager.kind == "detached":
        return detached.spec_json(spec)
    if manager.systemd:
        return render_systemd(spec, system=manager.system)
    return render_launchd(spec, daemon=manager.system, home=manager.facts.home).decode()


@dataclass
class Found:
    """A service as found on the node: the file saf installed (or None) and its status."""

    manager: Manager
    installed: str | None
    status: ServiceStatus
    supervisor_current: bool = True  # detached: supervise.py is this saf's
    notes: list[str] = field(default_factory=list)


async def find(run: Run, spec: ServiceSpec, manager: Manager, python: str) -> Found:
    if manager.kind == "detached":
        out = (await run(detached.read(spec, python, MARK))).stdout
        spec_text, _, rest = out.partition(MARK + "\n")
        program, _, answer = rest.partition(MARK + "\n")
        return Found(manager, spec_text or None, detached.status(spec.name, answer),
                     program == detached.SUPERVISOR)
    out = (await run(manager.read(spec, MARK))).stdout
    text, _, state = out.partition(MARK + "\n")
    return Found(manager, text or None, manager.status(spec, state))


async def read_status(run: Run, spec: ServiceSpec, python: str = "python3") -> ServiceStatus:
    """One service's status on a node (state, restarts, since, kept across reboots or not),
    for `saf status`: `run` runs a command there, with or without sudo. Without, a system
    unit or LaunchDaemon is looked for first (reading them needs no root), then the login
    user's own."""
    facts = await init_facts(run)
    manager = facts.manager()
    if facts.uid != 0 and manager.kind in ("systemd-user", "launchd-agent"):
        system = Manager("systemd" if manager.systemd else "launchd-daemon", facts)
        found = await find(run, spec, system, python)
        if found.installed is not None or found.status.state != "absent":
            return found.status
    return (await find(run, spec, manager, python)).status


async def read_logs(run: Run, spec: ServiceSpec, manager: Manager, lines: int = 20) -> list[str]:
    """The service's last lines of output: the journal, the launchd log file or the
    supervisor's log."""
    command = detached.logs(spec, lines) if manager.kind == "detached" else \
        manager.logs(spec, lines)
    return journal_lines((await run(command)).stdout)[-lines:]


def commands_up(spec: ServiceSpec, found: Found, python: str, text: str) -> tuple[list[str], str]:
    """(commands, why) to bring the service to `text` and running; no commands when it is."""
    manager = found.manager
    differs = found.installed != text or not found.supervisor_current
    enabled_ok = found.status.enabled is not False
    if not differs and found.status.active and enabled_ok:
        return [], ""
    why = ("install" if found.installed is None else "update" if differs else
           "start" if not found.status.active else "enable") + f" {manager.describe()}"
    if found.installed is not None and not found.status.active and not differs:
        why += f" (it is {found.status.state}: {found.status.detail})"
    if manager.kind == "detached":
        return detached.install(spec, python, write=differs), why
    return manager.install(spec, text, write=differs), why


def commands_down(spec: ServiceSpec, found: Found, python: str) -> list[str]:
    if found.installed is None and found.status.state == "absent":
        return []
    if found.manager.kind == "detached":
        return detached.remove(spec, python)
    return found.manager.remove(spec)


async def remove_service(run: Run, name: str, python: str,
                         kind: ManagerKind | None = None) -> list[str]:
    """Stop, disable and remove the service `name` under its manager (`kind`, as recorded;
    None: the one the node's facts pick): the commands that failed (none: it is gone)."""
    facts = await init_facts(run)
    manager = Manager(kind, facts) if kind else facts.manager()
    spec = ServiceSpec(name=name, argv=("/bin/true",))
    found = await find(run, spec, manager, python)
    return [command for command in commands_down(spec, found, python)
            if not (await run(command)).ok]


def keeper_kind(text: str) -> ManagerKind | None:
    """A manager's kind as a record names it (None when it is not one)."""
    kinds: tuple[ManagerKind, ...] = ("systemd", "systemd-user", "launchd-daemon",
                                      "launchd-agent", "detached")
    return next((k for k in kinds if k == text), None)
