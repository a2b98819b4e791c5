"""A service where the node has no init system saf can use: saf's own supervisor
(saf.cluster.supervise, copied to the node) keeps its restart policy while the node is up.
It is **not kept across reboots**, and every status says so (`kept_across_reboots`).

The folder is ~/.saf/services/NAME/: supervise.py, spec.json (what runs), supervisor.pid,
state.json, service.log. The commands are built here and run by the caller. supervise.py
imports only the standard library, so the node's python runs it with -S: a venv's
site-packages (its .pth files) cost 0.1-0.3 s of start-up on a loaded node, paid by every
status, stop and start.
"""

from __future__ import annotations

import json
from pathlib import Path

from saf.cluster.initsys import ServiceStatus
from saf.cluster.units import ServiceSpec, check
from saf.shell import program, quote

SUPERVISOR = (Path(__file__).with_name("supervise.py")).read_text()


def folder(spec: ServiceSpec) -> str:
    """The service's folder for a shell on the node (the name is a checked word)."""
    return f'"$HOME"/.saf/services/{spec.name}'


def spec_json(spec: ServiceSpec) -> str:
    check(spec)
    data: dict[str, object] = {
        "argv": list(spec.argv), "workdir": spec.workdir, "env": spec.environment(),
        "env_file": spec.env_file, "restart": spec.restart, "cpus": spec.cpus,
        "numa": spec.numa}
    if spec.up is not None:  # saf up's mark (saf.cluster.marked); unread by supervise.py
        data["up"] = spec.up
    return json.dumps(data, sort_keys=True) + "\n"


def read(spec: ServiceSpec, python: str, mark: str) -> str:
    """spec.json as installed, `mark`, supervise.py's hash-free copy check, `mark`, status."""
    where = folder(spec)
    return (f"cat {where}/spec.json 2>/dev/null; echo {mark}; "
            f"cat {where}/supervise.py 2>/dev/null; echo {mark}; "
            f"[ -f {where}/supervise.py ] && {program(python)} -S {where}/supervise.py status "
            f"{where} 2>/dev/null; true")


def status(name: str, output: str) -> ServiceStatus:
    """The status line of `read` (or of `supervise.py status`)."""
    try:
        answer = json.loads(output.strip().splitlines()[-1]) if output.strip() else {}
    except ValueError:
        answer = {}
    if not answer or not answer.get("installed"):
        return ServiceStatus(name, "detached", "absent", "not installed")
    pid = answer.get("pid")
    supervised = answer.get("supervisor") is not None
    if pid:
        state, detail = "active", "running (not kept across reboots)"
    elif supervised:
        state, detail = "activating", "waiting to restart"
    else:
        state = "inactive" if answer.get("stopped") or answer.get("last_exit") == 0 else "failed"
        detail = f"exited with {answer.get('last_exit')}" if answer.get("last_exit") \
            is not None else "not running"
    last = answer.get("last_exit")
    return ServiceStatus(name, "detached", state, detail, bool(pid), answer.get("restarts"),
                         answer.get("since"), pid, None,
                         None if last in (None, 0) else str(last))


def install(spec: ServiceSpec, python: str, *, write: bool) -> list[str]:
    """Write the folder (when `write`), stop a supervisor already there, start it again."""
    where = folder(spec)
    commands = []
    if write:
        for name, text in (("supervise.py", SUPERVISOR), ("spec.json", spec_json(spec))):
            commands.append(f"mkdir -p {where} && printf %s {quote(text)} > {where}/{name}.tmp "
                            f"&& mv -f {where}/{name}.tmp {where}/{name}")
    run = f"{program(python)} -S {where}/supervise.py"
    commands += [f"{run} stop {where} >/dev/null",
                 f"{run} run {where} </dev/null >/dev/null 2>&1"]
    return commands


def stop(spec: ServiceSpec, python: str) -> list[str]:
    """End the supervisor and the service's process group; its folder stays (`install`
    with write=False starts it again)."""
    where = folder(spec)
    return [f"if [ -f {where}/supervise.py ]; then {program(python)} -S {where}/supervise.py stop "
            f"{where}; fi"]


def remove(spec: ServiceSpec, python: str) -> list[str]:
    where = folder(spec)
    return [f"if [ -f {where}/supervise.py ]; then {program(python)} -S {where}/supervise.py stop "
            f"{where}; fi", f"rm -rf {where}"]


def logs(spec: ServiceSpec, lines: int = 20) -> str:
    return f"tail -n {int(lines)} {folder(spec)}/service.log 2>&1; true"
