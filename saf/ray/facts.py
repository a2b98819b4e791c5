"""What a node tells saf about itself for Ray (saf.ray.node_probe's `facts` answer), declared:
decoded at the gate (saf.ray.answers), where a wrong type or a value out of range fails the
node's call with what was wrong; downstream code reads attributes."""

from __future__ import annotations

import base64
import functools
import json
import zlib
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from saf.node_source import program_source
from saf.shell import program as shell_program
from saf.shell import quote

MARK = "saf-ray "

Text = Annotated[str, Meta(max_length=4096)]
Word = Annotated[str, Meta(max_length=60)]
Count = Annotated[int, Meta(ge=0, lt=1_000_000)]
Port = Annotated[int, Meta(gt=0, lt=65536)]
Versions = Annotated[tuple[Annotated[str, Meta(max_length=200)], ...], Meta(max_length=1000)]


class Answer(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="answer"):
    """An answer of the Ray probe: tagged with the action it answers ("facts", "start", ...;
    "error" for the node's own trouble), every field declared, nothing else allowed (the probe
    is sent with each call, so both sides are always the same version)."""


class RayParts(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Why each part of Ray a minimal `pip install ray` lacks does not import (None: it
    imports)."""

    dashboard: Annotated[str, Meta(max_length=2000)] | None = None
    client: Annotated[str, Meta(max_length=2000)] | None = None


class RayRecord(msgspec.Struct, frozen=True):
    """The settings saf recorded on the node when it started its Ray (StartPlan.settings, in
    a JSON file of the node's), compared flag by flag with the next run's by
    saf.ray.command.differences. Fields a later saf adds are let through: the file outlives
    the saf that wrote it."""

    argv: Annotated[tuple[Text, ...], Meta(max_length=1000)] = ()
    env: Annotated[dict[Text, Text], Meta(max_length=1000)] = {}
    head: Text = ""


class NodeFacts(Answer, tag="facts", frozen=True):
    python: Annotated[str, Meta(max_length=40)] | None = None
    executable: Text | None = None
    prefix: Text | None = None
    venv: Text | None = None
    fallback: bool = False  # the node's python was missing; these are python3's facts
    ray: Annotated[str, Meta(max_length=40)] | None = None
    ray_bin: Text | None = None
    system: Annotated[str, Meta(max_length=40)] | None = None
    machine: Annotated[str, Meta(max_length=40)] | None = None
    ssh_server_ip: Word | None = None
    addresses: Annotated[tuple[Annotated[str, Meta(max_length=200)], ...],
                         Meta(max_length=1000)] = ()
    listeners: dict[Port, Annotated[str, Meta(max_length=300)]] = {}
    ray_processes: Count = 0
    node_processes: Count = 0  # of them, those of the node's own folder (saf.ray.command)
    raylet_running: bool = False
    gcs_running: bool = False
    # The settings saf recorded when it started this node's Ray (None: no record).
    record: RayRecord | None = None
    nvidia: bool = False
    intel_arc: Count = 0  # Intel Arc GPUs (PCI ids in agents/arc_ids.py)
    osx_cluster_env: Annotated[str, Meta(max_length=40)] | None = None
    mlx: bool = False
    time: Annotated[float, Meta(gt=0, lt=1e11)] | None = None
    probes: dict[Annotated[str, Meta(max_length=300)], Annotated[str, Meta(max_length=300)]] = {}
    pyenv: Versions | None = None
    uv: Versions | None = None
    pyenv_bin: Text | None = None
    uv_bin: Text | None = None
    # The parts of Ray a minimal `pip install ray` lacks; absent when not asked for.
    ray_parts: RayParts | None = None
    # What the node's Python can import, when ray_parts was asked for (saf.ray.node_probe
    # _import_key): an answer with the same key still holds (saf.ray.node_call).
    parts_key: Annotated[str, Meta(max_length=100)] | None = None

    @property
    def ray_missing(self) -> dict[str, str]:
        """{"dashboard": why, "client": why} for the parts of Ray that do not import; empty
        when they import or were not asked for."""
        parts = self.ray_parts or RayParts()
        return {k: v for k, v in (("dashboard", parts.dashboard), ("client", parts.client))
                if v is not None}

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


