"""A service as the node's init system keeps it: a systemd unit or a launchd plist, rendered
from one typed spec (docs/services.md).

Every name saf gives a job starts with `saf-`, so saf only ever touches its own. Values are
written by each format's rules (systemd's quoting and `%` specifiers, plist XML) or refused
with the key at fault: a newline or a control character never reaches a unit, where it would
start a new setting.
"""

from __future__ import annotations

import plistlib
import re
from dataclasses import dataclass, field
from typing import Literal

from saf.errors import UsageError
from saf.shell import with_env_file

Restart = Literal["always", "on-failure", "no"]
RESTARTS: tuple[str, ...] = ("always", "on-failure", "no")
PREFIX = "saf-"
UP_KEY = "X-Saf-Up"  # the mark of a service `saf up` installed (ServiceSpec.up)
RESTART_SEC = 2  # seconds between a crash and the restart (systemd's RestartSec=, the supervisor's)

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}\$?")
_CPUS = re.compile(r"\d+(-\d+)?(,\d+(-\d+)?)*")
_GPUS = re.compile(r"[0-9A-Za-z.:-]+(,[0-9A-Za-z.:-]+)*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UnitError(UsageError):
    """A value of a service cannot be written into a unit (it names the key and why)."""


@dataclass(frozen=True)
class ServiceSpec:
    """One service, as the node runs it. `env` holds no secrets (it is shown by --check);
    secrets reach the node in `env_file` (a 0600 file there, see `env_file_text`)."""

    name: str  # without the prefix: the unit is saf-NAME.service, the job saf-NAME
    argv: tuple[str, ...]  # the program (an absolute path) and its arguments
    workdir: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    env_file: str | None = None  # an absolute path on the node
    restart: Restart = "on-failure"
    user: str | None = None  # run as this user (a system unit / LaunchDaemon only)
    cpus: str | None = None  # CPUs it may run on, "0-3,8"
    numa: int | None = None  # the NUMA node it runs on and takes memory from
    gpus: str | None = None  # the GPUs it sees, "0,1", through `gpu_env`
    gpu_env: str = "CUDA_VISIBLE_DEVICES"  # or ROCR_VISIBLE_DEVICES, ZE_AFFINITY_MASK...
    description: str = ""
    # The cluster whose `saf up` installed it (its mark: X-Saf-Up= in a unit, key X-Saf-Up in
    # a plist, "up" in the supervisor's spec.json); None for one a plain `saf run` installed.
    # Only marked services can be `not declared` (saf.cluster.marked).
    up: str | None = None

    @property
    def unit(self) -> str:
        """The systemd unit's name."""
        return f"{PREFIX}{self.name}.service"

    @property
    def label(self) -> str:
        """The launchd job's label."""
        return f"{PREFIX}{self.name}"

    def environment(self) -> dict[str, str]:
        """The non-secret environment, the GPUs' variable included."""
        env = dict(self.env)
        if self.gpus is not None:
            env[self.gpu_env] = self.gpus
        return env


def valid_name(name: str) -> bool:
    """Whether `name` is a service name saf gives (a unit's word)."""
    return _NAME.fullmatch(name) is not None


def check(spec: ServiceSpec) -> None:
    """Refuse what no init system can be given safely, naming the key."""
    if not _NAME.fullmatch(spec.name):
        raise UnitError(f"service name {spec.name!r}: use lowercase letters, digits, '_', '.' "
                        "and '-' (at most 64, starting with a letter or digit)")
    what = f"service {spec.name!r}"
    if not spec.argv or not spec.argv[0]:
        raise UnitError(f"{what}: command is empty")
    if not spec.argv[0].startswith("/"):
        raise UnitError(f"{what}: the program {spec.argv[0]!r} must be an absolute path "
                        "(an init system does not search PATH as a shell does)")
    if any(c in spec.argv[0] for c in "\"'\\"):
        # systemd refuses quotes and backslashes in an executable's name (systemd-analyze
        # verify: "Executable name contains special characters").
        raise UnitError(f"{what}: the program's path {spec.argv[0]!r} holds a quote or a "
                        "backslash, which systemd refuses in a program's name")
    for index, arg in enumerate(spec.argv):
        _plain(f"{what}: command argument {index + 1}", arg)
    _check_environment(what, spec)
    _check_settings(what, spec)


def _check_environment(what: str, spec: ServiceSpec) -> None:
    """The environment's names and values, and the two paths the unit names."""
    for key, value in spec.environment().items():
        if not _ENV_KEY.fullmatch(key):
            raise UnitError(f"{what}: env name {key!r} is not a variable name")
        _plain(f"{what}: env {key}", value)
    for key, path in (("workdir", spec.workdir), ("env_file", spec.env_file)):
        if path is not None:
            _plain(f"{what}: {key}", path)
            if not path.startswith("/"):
                raise UnitError(f"{what}: {key} {path!r} must be an absolute path")


def _check_settings(what: str, spec: ServiceSpec) -> None:
    """The restart policy, the user, and the pinning (CPUs, NUMA node, GPUs)."""
    if spec.restart not in RESTARTS:
        raise UnitError(f"{what}: restart must be one of {', '.join(RESTARTS)}, "
                        f"not {spec.restart!r}")
    if spec.user is not None and not _USER.fullmatch(spec.user):
        raise UnitError(f"{what}: user {spec.user!r} is not a user name")
    if spec.cpus is not None and not _CPUS.fullmatch(spec.cpus):
        raise UnitError(f"{what}: cpus {spec.cpus!r} must be a CPU list like 0-3,8")
    if spec.numa is not None and not 0 <= spec.numa < 1024:
        raise UnitError(f"{what}: numa must be a NUMA node number, not {spec.numa}")
    if spec.gpus is not None and not _GPUS.fullmatch(spec.gpus):
        raise UnitError(f"{what}: gpus {spec.gpus!r} must be a list like 0,1")
    if not _ENV_KEY.fullmatch(spec.gpu_env):
        raise UnitError(f"{what}: gpu_env {spec.gpu_env!r} is not a variable name")
    _plain(f"{what}: description", spec.description)
    if spec.up is not None:
        _plain(f"{what}: cluster name", spec.up)


def _plain(what: str, value: str) -> None:
    if _CONTROL.search(value):
        raise UnitError(f"{what} holds a newline or another control character, which an "
                        "init system's file cannot carry: write it without one")


# -- systemd --------------------------------------------------------------------------------
def _specifiers(value: str) -> str:
    """`%` is systemd's specifier character in almost every setting."""
    return value.replace("%", "%%")


def _c_quoted(value: str) -> str:
    """One word in double quotes, C-escaped as systemd unquotes it."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exec_word(arg: str, *, program: bool = False) -> str:
    """One ExecStart= argument, quoted: `%` doubled (no specifier), quotes and backslashes
    escaped, and in an argument `$` doubled (no variable expansion; systemd expands none in
    the program's name, where `$$` would stay two)."""
    word = _specifiers(arg)
    return _c_quoted(word if program else word.replace("$", "$$"))


def unit_path(spec: ServiceSpec, *, system: bool) -> str:
    """Where the unit lives: /etc/systemd/system, or the user's ~/.config/systemd/user
    (written with $HOME: the path is for a shell on the node)."""
    folder = "/etc/systemd/system" if system else "$HOME/.config/systemd/user"
    return f"{folder}/{spec.unit}"


def render_systemd(spec: ServiceSpec, *, system: bool) -> str:
    """The unit file: a system unit (WantedBy=multi-user.target) or a user unit
    (default.target, no User=)."""
    check(spec)
    if spec.user and not system:
        raise UnitError(f"service {spec.name!r}: user = {spec.user!r} needs a system unit "
                        "(become = true); a user unit runs as the login user")
    description = spec.description or f"saf service {spec.name}"
    unit = ["[Unit]", f"Description={_specifiers(description)}",
            "After=network-online.target", "Wants=network-online.target"]
    if spec.up is not None:
        unit.append(f"{UP_KEY}={_specifiers(spec.up)}")  # systemd ignores X- keys
    if spec.restart == "always":
        unit.append("StartLimitIntervalSec=0")  # keep trying for as long as the node is up
    service = ["", "[Service]", "Type=simple",
               "ExecStart=" + " ".join([exec_word(spec.argv[0], program=True),
                                         *(exec_word(a) for a in spec.argv[1:])]),
               f"Restart={spec.restart}", f"RestartSec={RESTART_SEC}"]
    if spec.user:
        service.append(f"User={spec.user}")
    if spec.workdir:
        service.append(f"WorkingDirectory={_specifiers(spec.workdir)}")
    for key, value in sorted(spec.environment().items()):
        # Environment= does no $ expansion; it unquotes C-style and expands specifiers.
        service.append("Environment=" + _c_quoted(_specifiers(f"{key}={value}")))
    if spec.env_file:
        service.append(f"EnvironmentFile={_specifiers(spec.env_file)}")
    if spec.numa is not None:
        service += ["NUMAPolicy=bind", f"NUMAMask={spec.numa}"]
        if spec.cpus is None:
            service.append("CPUAffinity=numa")  # the CPUs of NUMAMask (systemd >= 248)
    if spec.cpus is not None:
        service.append("CPUAffinity=" + spec.cpus.replace(",", " "))
    install = ["", "[Install]",
               "WantedBy=" + ("multi-user.target" if system else "default.target")]
    return "\n".join(["# written by saf: changes are overwritten by the next saf up", *unit,
                      *service, *install]) + "\n"


# -- launchd --------------------------------------------------------------------------------
def plist_path(spec: ServiceSpec, *, daemon: bool) -> str:
    folder = "/Library/LaunchDaemons" if daemon else "$HOME/Library/LaunchAgents"
    return f"{folder}/{spec.label}.plist"


def launchd_log(spec: ServiceSpec, *, daemon: bool) -> str:
    """The log file saf reads a launchd job's output from."""
    return (f"/Library/Logs/saf/{spec.label}.log" if daemon
            else f"$HOME/Library/Logs/saf/{spec.label}.log")


def render_launchd(spec: ServiceSpec, *, daemon: bool, home: str) -> bytes:
    """The job's plist: a LaunchDaemon (system domain, at boot) or a LaunchAgent (the user's
    GUI domain, at login). `home` is the user's home on the node (plists take no $HOME)."""
    check(spec)
    if spec.user and not daemon:
        raise UnitError(f"service {spec.name!r}: user = {spec.user!r} needs a LaunchDaemon "
                        "(become = true); a LaunchAgent runs as the login user")
    if spec.cpus is not None or spec.numa is not None:
        raise UnitError(f"service {spec.name!r}: macOS has no CPU or NUMA pinning; leave "
                        "cpus and numa out for this node")
    args = list(spec.argv)
    if spec.env_file:
        args = with_env_file(spec.env_file, args)  # launchd has no EnvironmentFile
    log = launchd_log(spec, daemon=daemon).replace("$HOME", home)
    keeps: dict[str, bool | dict[str, bool]] = {
        "always": True, "on-failure": {"SuccessfulExit": False}, "no": False}
    keep = keeps[spec.restart]
    job: dict[str, object] = {
        "Label": spec.label, "ProgramArguments": args, "RunAtLoad": True, "KeepAlive": keep,
        "ThrottleInterval": max(RESTART_SEC, 1), "StandardOutPath": log,
        "StandardErrorPath": log}
    if spec.workdir:
        job["WorkingDirectory"] = spec.workdir
    if spec.environment():
        job["EnvironmentVariables"] = dict(sorted(spec.environment().items()))
    if spec.user:
        job["UserName"] = spec.user
    if spec.up is not None:
        job[UP_KEY] = spec.up  # launchd ignores keys it does not know
    return plistlib.dumps(job, sort_keys=True)


# -- secrets --------------------------------------------------------------------------------
def env_file_text(values: dict[str, str]) -> str:
    """KEY="value" lines that both systemd's EnvironmentFile= and sh's `.` read the same:
    inside double quotes each unquotes exactly `\\`, `"`, `$` and a backquote."""
    lines = []
    for key, value in values.items():
        if not _ENV_KEY.fullmatch(key):
            raise UnitError(f"env_file: {key!r} is not a variable name")
        if _CONTROL.search(value):
            raise UnitError(f"env_file: the value of {key} holds a newline or another control "
                            "character")
        escaped = re.sub(r'([\\"$`])', r"\\\1", value)
        lines.append(f'{key}="{escaped}"\n')
    return "".join(lines)
