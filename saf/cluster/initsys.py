"""The node's init system, and saf's conversation with it about one service.

Facts first (`FACTS`, one call): the system, who saf is there (uid 0 when the step has
`become`), and for systemd whether the login user lingers. They pick the `Manager`:
systemd as the system (root), systemd --user (lingering: its units start at boot without a
login), launchd's system domain (root) or the user's GUI domain, or none (a container, no
systemd running): saf's own supervisor, not kept across reboots (saf.cluster.detached).

Then the commands (each built here, run by the caller through its connection): read the
unit and its state, install (atomic write, daemon-reload, enable, restart), read the logs,
remove. The parsers read what the real tools print (tests/test_cluster_initsys.py runs them
on recordings of systemctl, loginctl, launchctl and journalctl).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from saf.cluster.units import ServiceSpec, launchd_log, plist_path, unit_path
from saf.shell import quote

ManagerKind = Literal["systemd", "systemd-user", "launchd-daemon", "launchd-agent", "detached"]

# Fact commands read the node's files under this prefix: empty on a real node, a recorded
# tree in tests (as saf.recipe.facts.ROOT; repeated here, below the recipe layer).
ROOT = '"${SAF_FACTS_ROOT:-}"'

FACTS = "\n".join([
    'echo "os $(uname -s)"', 'echo "uid $(id -u)"', 'echo "user $(id -un)"',
    'echo "home $HOME"',
    f'if [ -d {ROOT}/run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then',
    '  echo "init systemd"',
    '  if [ "$(id -u)" != 0 ]; then',
    '    loginctl show-user "$(id -un)" 2>/dev/null | grep "^Linger=" || echo "Linger=?"; fi',
    'elif [ "$(uname -s)" = Darwin ] && command -v launchctl >/dev/null 2>&1; then',
    '  echo "init launchd"',
    'else echo "init none"; fi',
    "true"])

# A user's systemctl needs the user manager's bus, which a non-login SSH command may lack.
_USER_ENV = 'XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/run/user/$(id -u)}" '
SHOWN = ("Id", "LoadState", "ActiveState", "SubState", "UnitFileState", "NRestarts", "MainPID",
         "ExecMainStartTimestamp", "ExecMainStatus", "Result")


@dataclass(frozen=True)
class InitFacts:
    init: Literal["systemd", "launchd", "none"]
    uid: int
    user: str
    home: str
    linger: bool | None = None  # systemd, not root: whether the user manager runs at boot

    def manager(self) -> Manager:
        if self.init == "systemd":
            if self.uid == 0:
                return Manager("systemd", self)
            return Manager("systemd-user", self)
        if self.init == "launchd":
            return Manager("launchd-daemon" if self.uid == 0 else "launchd-agent", self)
        return Manager("detached", self)


def parse_facts(text: str) -> InitFacts:
    values: dict[str, str] = {}
    linger: bool | None = None
    for line in text.splitlines():
        if line.startswith("Linger="):
            linger = {"yes": True, "no": False}.get(line.partition("=")[2].strip())
            continue
        key, _, value = line.partition(" ")
        values.setdefault(key, value.strip())
    init = values.get("init", "none")
    try:
        uid = int(values.get("uid", ""))
    except ValueError:
        uid = -1
    return InitFacts(init if init in ("systemd", "launchd") else "none",  # type: ignore[arg-type]
                     uid, values.get("user", ""), values.get("home", ""), linger)


@dataclass(frozen=True)
class ServiceStatus:
    """One service as its manager reports it (for `saf status` and the step's verify)."""

    name: str
    manager: ManagerKind
    state: str  # "active", "inactive", "failed", "activating", "absent" (no such job)...
    detail: str = ""  # systemd's SubState, launchd's state line, the supervisor's word
    active: bool = False
    restarts: int | None = None
    since: str | None = None  # when the running process started, as the manager says it
    pid: int | None = None
    enabled: bool | None = None  # starts at boot (systemd's UnitFileState)
    last_exit: str | None = None

    @property
    def disabled(self) -> bool:
        """Installed under an init system but not enabled: it runs now, not after a boot."""
        return self.manager != "detached" and self.enabled is False

    @property
    def kept_across_reboots(self) -> bool:
        return self.manager != "detached" and not self.disabled


def parse_properties(text: str) -> dict[str, str]:
    """`systemctl show` output: KEY=VALUE lines (the first of each key: a multi-unit answer
    is split by the caller)."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and " " not in key:
            props.setdefault(key, value)
    return props


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def status_from_systemd(name: str, props: dict[str, str], *, user: bool) -> ServiceStatus:
    manager: ManagerKind = "systemd-user" if user else "systemd"
    if props.get("LoadState") == "not-found" or not props:
        return ServiceStatus(name, manager, "absent", "no such unit")
    state = props.get("ActiveState", "unknown")
    pid = _int(props.get("MainPID"))
    since = props.get("ExecMainStartTimestamp") or None
    enabled = props.get("UnitFileState")
    last = props.get("Result")
    return ServiceStatus(
        name, manager, state, props.get("SubState", ""), state == "active",
        _int(props.get("NRestarts")), since if since != "n/a" else None,
        pid if pid else None,
        None if enabled is None else enabled in ("enabled", "enabled-runtime"),
        None if last in (None, "success") else last)


def parse_launchctl_print(text: str) -> dict[str, str]:
    """The job's own `key = value` lines of `launchctl print DOMAIN/LABEL` (one tab deep;
    nested blocks such as `arguments = {` are left out)."""
    props: dict[str, str] = {}
    depth = 0
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.endswith("{"):
            depth += 1
            continue
        if stripped.startswith("}"):
            depth -= 1
            continue
        if depth == 1:
            key, sep, value = stripped.partition(" = ")
            if sep:
                props.setdefault(key, value)
    return props


def status_from_launchd(name: str, props: dict[str, str], *, daemon: bool) -> ServiceStatus:
    manager: ManagerKind = "launchd-daemon" if daemon else "launchd-agent"
    if not props:
        return ServiceStatus(name, manager, "absent", "not loaded")
    state = props.get("state", "unknown")
    runs = _int(props.get("runs"))
    last = props.get("last exit code")
    return ServiceStatus(
        name, manager, "active" if state == "running" else "inactive", state,
        state == "running", max(runs - 1, 0) if runs else None, None,
        _int(props.get("pid")), True,
        None if last in (None, "(never exited)", "0") else last)


def journal_lines(text: str) -> list[str]:
    """journalctl's lines without its own notes (`-- No entries --`, `-- Logs begin ...`)."""
    return [line for line in text.splitlines() if line and not line.startswith("-- ")]


class Manager:
    """The commands for one service under one manager (not for `detached`: see
    saf.cluster.detached)."""

    def __init__(self, kind: ManagerKind, facts: InitFacts) -> None:
        self.kind = kind
        self.facts = facts

    @property
    def systemd(self) -> bool:
        return self.kind in ("systemd", "systemd-user")

    @property
    def system(self) -> bool:
        return self.kind in ("systemd", "launchd-daemon")

    def describe(self) -> str:
        return {"systemd": "a systemd system unit", "systemd-user": "a systemd --user unit",
                "launchd-daemon": "a launchd LaunchDaemon", "launchd-agent":
                "a launchd LaunchAgent", "detached": "saf's supervisor (not kept across reboots)"
                }[self.kind]

    def path(self, spec: ServiceSpec) -> str:
        """The unit's or plist's path, for a shell on the node (quoted; $HOME left to it)."""
        raw = unit_path(spec, system=self.system) if self.systemd else \
            plist_path(spec, daemon=self.system)
        return _shell_path(raw)

    def ctl(self) -> str:
        return "systemctl" if self.kind == "systemd" else _USER_ENV + "systemctl --user"

    def domain(self) -> str:
        return "system" if self.kind == "launchd-daemon" else f"gui/{self.facts.uid}"

    def read(self, spec: ServiceSpec, mark: str) -> str:
        """The installed file, `mark`, then the state (never fails: a missing job is a state)."""
        if self.systemd:
            state = f"{self.ctl()} show -p {','.join(SHOWN)} {spec.unit}"
        else:
            state = f"launchctl print {self.domain()}/{spec.label}"
        return f"cat {self.path(spec)} 2>/dev/null; echo {mark}; {state} 2>/dev/null; true"

    def status(self, spec: ServiceSpec, output: str) -> ServiceStatus:
        """The state part of `read`'s output."""
        if self.systemd:
            return status_from_systemd(spec.name, parse_properties(output),
                                       user=self.kind == "systemd-user")
        return status_from_launchd(spec.name, parse_launchctl_print(output),
                                   daemon=self.kind == "launchd-daemon")

    def install(self, spec: ServiceSpec, text: str, *, write: bool) -> list[str]:
        """Commands that put `text` in place (when `write`) and (re)start the job enabled."""
        path = self.path(spec)
        commands = []
        if self.kind == "systemd-user" and self.facts.linger is not True:
            # Without lingering the user manager (and the unit) stops at logout and does not
            # start at boot. A user may switch it on for themselves where polkit runs; logind
            # without polkit (a minimal Debian) answers "Access denied": say what to do then.
            # The user manager then starts on its own: wait (5 s at most) for its bus.
            user, hint = quote(self.facts.user), quote(linger_refused(self.facts.user))
            commands.append(f"loginctl enable-linger {user} || {{ rc=$?; echo {hint} >&2; "
                            "exit $rc; }; { i=0; "
                            'while [ ! -S "/run/user/$(id -u)/bus" ] && [ $i -lt 50 ]; do '
                            "sleep 0.1; i=$((i+1)); done; }")
        if write:
            folder = path.rsplit("/", 1)[0]  # saf's names are plain words: never quoted
            commands.append(f"mkdir -p {folder} && printf %s {quote(text)} > {path}.saf-tmp "
                            f"&& mv -f {path}.saf-tmp {path}")
        if self.systemd:
            commands += [f"{self.ctl()} daemon-reload", f"{self.ctl()} enable {spec.unit}",
                         f"{self.ctl()} restart {spec.unit}"]
        else:
            log = _shell_path(launchd_log(spec, daemon=self.system))
            job = f"{self.domain()}/{spec.label}"
            commands += [f"mkdir -p {log.rsplit('/', 1)[0]}",
                         f"launchctl bootout {job} 2>/dev/null; true",
                         f"launchctl enable {job}",
                         f"launchctl bootstrap {self.domain()} {path}"]
        return commands

    def stop(self, spec: ServiceSpec) -> list[str]:
        """Stop the job, leaving it installed (and, under systemd, enabled at boot); a launchd
        job is booted out, else its KeepAlive would start it again."""
        if self.systemd:
            return [f"{self.ctl()} stop {spec.unit}"]
        return [f"launchctl bootout {self.domain()}/{spec.label} 2>/dev/null; true"]

    def remove(self, spec: ServiceSpec) -> list[str]:
        """Stop, disable and delete the job (each command succeeds when it is already gone)."""
        path = self.path(spec)
        if self.systemd:
            return [f"{self.ctl()} disable --now {spec.unit} 2>/dev/null; true",
                    f"rm -f {path}", f"{self.ctl()} daemon-reload",
                    f"{self.ctl()} reset-failed {spec.unit} 2>/dev/null; true"]
        return [f"launchctl bootout {self.domain()}/{spec.label} 2>/dev/null; true",
                f"rm -f {path}"]

    def logs(self, spec: ServiceSpec, lines: int = 20) -> str:
        if self.systemd:
            user = " --user" if self.kind == "systemd-user" else ""
            return (f"journalctl{user} -u {spec.unit} -n {int(lines)} --no-pager -o short-iso "
                    "2>&1; true")
        return f"tail -n {int(lines)} {_shell_path(launchd_log(spec, daemon=self.system))} " \
               "2>&1; true"


def linger_refused(user: str) -> str:
    """What to do when the node will not let `user` linger (printed there, under the refusal)."""
    return (f"saf: lingering for {user} was refused, and without it a --user unit stops at "
            "logout and does not start at boot. Switch it on once as root on the node "
            f"(sudo loginctl enable-linger {user}), or let saf log in as root for a system "
            "unit.")


def _shell_path(raw: str) -> str:
    """A path saf built (its names are checked words) for sh: a system path under the facts
    root, a user's with $HOME expanded by the node's shell."""
    if raw.startswith("$HOME/"):
        return '"$HOME"' + quote(raw[len("$HOME"):])
    return ROOT + quote(raw)
