"""What a node tells saf about itself for Ray (saf.ray.node_probe's answer), checked field by
field: a node's answer is untrusted, so a wrong type or a value out of range is dropped and
counted, never a crash."""

from __future__ import annotations

import base64
import functools
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from saf.node_source import program_source
from saf.shell import program as shell_program, quote

MARK = "saf-ray "


@dataclass(frozen=True)
class NodeFacts:
    python: str | None = None
    executable: str | None = None
    venv: str | None = None
    fallback: bool = False  # the node's python was missing; these are python3's facts
    ray: str | None = None
    ray_bin: str | None = None
    system: str | None = None
    machine: str | None = None
    ssh_server_ip: str | None = None
    addresses: tuple[str, ...] = ()
    listeners: dict[int, str] = field(default_factory=dict)
    ray_processes: int = 0
    node_processes: int = 0  # of them, those of the node's own folder (saf.ray.command)
    raylet_running: bool = False
    gcs_running: bool = False
    record: dict[str, Any] | None = None
    nvidia: bool = False
    osx_cluster_env: str | None = None
    mlx: bool = False
    time: float | None = None
    probes: dict[str, str] = field(default_factory=dict)
    pyenv: tuple[str, ...] | None = None
    uv: tuple[str, ...] | None = None
    pyenv_bin: str | None = None
    uv_bin: str | None = None
    # The parts of Ray a minimal `pip install ray` lacks, each with why it does not import
    # ("dashboard", "client"); empty when they import or were not asked for.
    ray_missing: dict[str, str] = field(default_factory=dict)
    bad_fields: int = 0

    def ray_fix(self) -> str:
        """The command that installs Ray's missing parts into this node's Python."""
        pin = f"ray[default]=={self.ray}" if self.ray else "ray[default]"
        return f"{quote(self.executable or 'python')} -m pip install {quote(pin)}"

    @property
    def ray_missing_text(self) -> str:
        """"its Ray lacks the dashboard (No module named 'aiohttp_cors'), ..." or ""."""
        if not self.ray_missing:
            return ""
        what = {"dashboard": "the dashboard", "client": "Ray Client"}
        return "its Ray lacks " + " and ".join(
            f"{what.get(k, k)} ({v})" for k, v in sorted(self.ray_missing.items()))

    @property
    def is_macos(self) -> bool:
        return self.system == "Darwin"

    @property
    def apple_silicon(self) -> bool:
        return self.is_macos and self.machine == "arm64"

    @property
    def os_arch(self) -> str:
        system = {"Darwin": "macos", "Linux": "linux"}.get(self.system or "", self.system or "?")
        return f"{system}/{self.machine or '?'}"


@functools.cache
def probe_source() -> str:
    """The node program, compressed, for `python -c` (stdin belongs to the guard)."""
    text = program_source("saf.ray", "node_probe.py")
    packed = base64.b64encode(zlib.compress(text.encode(), 9)).decode()
    return (f"import base64,zlib;exec(compile(zlib.decompress(base64.b64decode('{packed}')),"
            "'saf_ray_probe','exec'))")


def probe_command(python: str, action: str, args: dict[str, Any], *,
                  fallback: str | None = None) -> str:
    """The shell command that runs the node program with `python` (or, when that is not
    there yet, with `fallback`, e.g. python3 before python-match made the venv)."""
    program = f"-c {quote(probe_source())} {action} {quote(json.dumps(args, sort_keys=True))}"
    if fallback is None:
        return f"{shell_program(python)} {program}"
    # Whether the python runs, not only whether its first word is a program: for
    # `/usr/bin/env ~/venv/bin/python` that would be env, there before the venv is made.
    return (f"if {shell_program(python)} -c '' >/dev/null 2>&1; then "
            f"{shell_program(python)} {program}; else "
            f"SAF_PY_FALLBACK=1 {shell_program(fallback)} {program}; fi")


def answer(stdout: str) -> dict[str, Any] | None:
    """The node program's JSON answer among the lines of its output, or None."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARK):
            try:
                value = json.loads(line[len(MARK):])
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def _str(raw: dict[str, Any], key: str, bad: list[str], limit: int = 4096) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, str) and len(value) <= limit:
        return value
    bad.append(key)
    return None


def _strs(value: Any, key: str, bad: list[str]) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, list) and len(value) <= 1000 and all(
            isinstance(v, str) and len(v) <= 200 for v in value):
        return tuple(value)
    bad.append(key)
    return None


def parse_facts(raw: dict[str, Any]) -> NodeFacts:
    bad: list[str] = []
    listeners: dict[int, str] = {}
    for port, owner in (raw.get("listeners") or {}).items() if isinstance(
            raw.get("listeners"), dict) else ():
        if isinstance(port, str) and port.isdigit() and 0 < int(port) < 65536 and isinstance(
                owner, str):
            listeners[int(port)] = owner[:300]
        else:
            bad.append("listeners")
    probes = {k: v[:200] for k, v in (raw.get("probes") or {}).items()
              if isinstance(k, str) and isinstance(v, str)} if isinstance(
                  raw.get("probes"), dict) else {}
    counts = {}
    for key in ("ray_processes", "node_processes"):
        count = raw.get(key, 0)
        if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count < 1_000_000:
            bad.append(key)
            count = 0
        counts[key] = count
    when = raw.get("time")
    if not isinstance(when, (int, float)) or isinstance(when, bool) or not 0 < when < 1e11:
        when = None
    record = raw.get("record")
    flags = {k: raw.get(k) for k in ("raylet_running", "gcs_running", "nvidia", "mlx")}
    for key, value in flags.items():
        if not isinstance(value, bool):
            if value is not None:
                bad.append(key)
            flags[key] = False
    missing: dict[str, str] = {}
    parts = raw.get("ray_parts")
    if isinstance(parts, dict):
        for key in ("dashboard", "client"):
            why = parts.get(key)
            if isinstance(why, str):
                missing[key] = why[:300]
            elif why is not None:
                bad.append("ray_parts")
    elif parts is not None:
        bad.append("ray_parts")
    return NodeFacts(
        ray_missing=missing,
        python=_str(raw, "python", bad, 40), executable=_str(raw, "executable", bad),
        venv=_str(raw, "venv", bad), fallback=raw.get("fallback") is True,
        ray=_str(raw, "ray", bad, 40), ray_bin=_str(raw, "ray_bin", bad),
        system=_str(raw, "system", bad, 40), machine=_str(raw, "machine", bad, 40),
        ssh_server_ip=_str(raw, "ssh_server_ip", bad, 60),
        addresses=_strs(raw.get("addresses"), "addresses", bad) or (),
        listeners=listeners, ray_processes=counts["ray_processes"],
        node_processes=counts["node_processes"],
        raylet_running=bool(flags["raylet_running"]), gcs_running=bool(flags["gcs_running"]),
        record=record if isinstance(record, dict) else None, nvidia=bool(flags["nvidia"]),
        osx_cluster_env=_str(raw, "osx_cluster_env", bad, 40), mlx=bool(flags["mlx"]),
        time=when, probes=probes, pyenv=_strs(raw.get("pyenv"), "pyenv", bad),
        uv=_strs(raw.get("uv"), "uv", bad), pyenv_bin=_str(raw, "pyenv_bin", bad),
        uv_bin=_str(raw, "uv_bin", bad), bad_fields=len(bad))
