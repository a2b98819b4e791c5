"""One service on one node, whatever keeps it: the facts, its status, its logs, and the plan
of what must change. The `service` step kind (saf.recipe.kinds.service) and `saf status`
both read a service through here.
"""

from __future__ import annotations

import dataclasses
import json
import plistlib
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


async def resolve(run: Run, spec: ServiceSpec, node: str) -> ServiceSpec:
    """`spec` as it is written on the node: its program found there (absolute_argv) and an
    env_file under `~/` in the login user's home (saf up sends secrets to ~/.saf/env/)."""
    spec = await absolute_argv(run, spec, node)
    if spec.env_file and spec.env_file.startswith("~/"):
        home = (await run('printf %s "$HOME"')).stdout.strip()
        spec = dataclasses.replace(spec, env_file=home + spec.env_file[1:])
    return spec


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
    for `saf status`: `run` runs a command there, with or without sudo."""
    return (await read_found(run, spec, python)).status


async def read_found(run: Run, spec: ServiceSpec, python: str = "python3") -> Found:
    """One service as found on a node, whichever manager keeps it: without root, a system
    unit or LaunchDaemon is looked for first (reading them needs no root), then the login
    user's own."""
    facts = await init_facts(run)
    manager = facts.manager()
    if facts.uid != 0 and manager.kind in ("systemd-user", "launchd-agent"):
        system = Manager("systemd" if manager.systemd else "launchd-daemon", facts)
        found = await find(run, spec, system, python)
        if found.installed is not None or found.status.state != "absent":
            return found
    return await find(run, spec, manager, python)


def differences(spec: ServiceSpec, found: Found) -> list[str]:
    """What differs between the file installed for the service (unit, plist, supervisor's
    spec.json) and the one saf would write for `spec` under the same manager: "command",
    "env" (the environment, its file, and the secrets' digest: never their values),
    "restart", or "settings" for anything else (the working directory, user, pinning). Empty
    when nothing is installed or it is the same."""
    if found.installed is None:
        return []
    want = rendered(spec, found.manager)
    if found.installed == want:
        return []
    have, wanted = _fields(found.installed, found.manager), _fields(want, found.manager)
    return [k for k in ("command", "env", "restart") if have.get(k) != wanted.get(k)] \
        or ["settings"]


def _fields(text: str, manager: Manager) -> dict[str, object]:
    """The command, environment and restart policy as a file of this manager writes them
    (a file that does not read back has none, so each differs)."""
    try:
        if manager.kind == "detached":
            spec = json.loads(text)
            return {"command": spec.get("argv"), "restart": spec.get("restart"),
                    "env": (spec.get("env"), spec.get("env_file"))}
        if manager.systemd:
            lines = text.splitlines()

            def of(*keys: str) -> list[str]:
                return [line for line in lines if line.split("=", 1)[0] in keys]
            return {"command": of("ExecStart"), "restart": of("Restart"),
                    "env": of("Environment", "EnvironmentFile")}
        job = plistlib.loads(text.encode())
        return {"command": job.get("ProgramArguments"), "restart": job.get("KeepAlive"),
                "env": job.get("EnvironmentVariables")}
    except (ValueError, AttributeError, plistlib.InvalidFileException):
        return {}


async def read_logs(run: Run, spec: ServiceSpec, manager: Manager, lines: int = 20) -> list[str]:
    """The service's last lines of output: the journal, the launchd log file or the
    supervisor's log."""
    command = detached.logs(spec, lines) if manager.kind == "detached" else \
        manager.logs(spec, lines)
    return journal_lines((await run(command)).stdout)[-lines:]


def only_mark_differs(spec: ServiceSpec, found: Found) -> bool:
    """Whether the installed file is the one saf would write for `spec` but for saf up's
    mark (saf.cluster.marked), which an older saf up did not write: unmarked, current and
    enabled otherwise."""
    from saf.cluster.marked import mark_of  # marked reads units; service stays below it

    if spec.up is None or found.installed is None or not found.supervisor_current \
            or found.status.enabled is False \
            or mark_of(found.manager.kind, found.installed) is not None:
        return False
    try:
        return rendered(dataclasses.replace(spec, up=None), found.manager) == found.installed
    except UnitError:
        return False


def commands_up(spec: ServiceSpec, found: Found, python: str, text: str) -> tuple[list[str], str]:
    """(commands, why) to bring the service to `text` and running; no commands when it is."""
    manager = found.manager
    differs = found.installed != text or not found.supervisor_current
    enabled_ok = found.status.enabled is not False
    if not differs and found.status.active and enabled_ok:
        return [], ""
    why = ("install" if found.installed is None else "update" if differs else
           "start" if not found.status.active else "enable") + f" {manager.describe()}"
    changed = differences(spec, found) if found.installed is not None else []
    if changed:
        why += f" ({', '.join(changed)} {'differs' if len(changed) == 1 else 'differ'})"
    if found.installed is not None and not found.status.active and not differs:
        why += f" (it is {found.status.state}: {found.status.detail})"
    if manager.kind == "detached":
        return detached.install(spec, python, write=differs), why
    return manager.install(spec, text, write=differs), why


def commands_stop(spec: ServiceSpec, found: Found, python: str) -> list[str]:
    """Stop the service where it is installed, leaving it installed: `saf up` starts it
    again (its plan sees it inactive)."""
    if found.manager.kind == "detached":
        return detached.stop(spec, python)
    return found.manager.stop(spec)


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
