"""The program saf runs on a node (with the node's own Python, stdlib only, Python >= 3.9)
to read what Ray needs and to start and stop Ray there. It is sent as `python -c TEXT ACTION
JSON`, its TEXT with the node helper (saf.agents.node_common) in place of its import
(saf.node_source), and prints one JSON object; saf checks every field it reads
(saf.ray.facts), so nothing here is trusted.

Actions:
    facts {"ports": [...], "temp_dir": ..., "node_dir": ..., "node_name": ...,
           "probe": ["host:port"], "parts": whether Ray's dashboard and client import: true,
           false, or "unless_running" (not when this node's raylet runs),
           "parts_known": {"key": ..., "parts": {...}}: the answer an earlier call gave, kept
           while the node's import key (_import_key) is the same}
    start {"argv": [...], "env": {...}, "record": path, "settings": {...}}
    stop  {"temp_dir": ..., "node_dir": ..., "node_name": ..., "sweep": bool}
    tail  {"temp_dir": ..., "node_dir": ..., "lines": n, "raylet": path, "node_name": ...}
    probe {"targets": ["host:port"], "timeout": s}

Each answer carries its action as "answer" (saf.ray.answers declares each); an OSError of the
node's own (a folder it may not write) is answered as {"answer": "error", "error": "..."}.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any

from saf.agents.node_common import atomic_write, listening, run_tool

# An action's arguments: the JSON object saf sent (saf.ray.command builds it), read with
# .get() and the field's own default. Aliases are evaluated on the nodes' Python 3.9.
Args = dict[str, Any]
# An action's answer, printed as JSON (saf.ray.answers checks every field it reads).
Answer = dict[str, object]
# (pid, ppid, process group, command line) of each process: _process_table().
Table = list[tuple[int, int, int, str]]


def _which(name: str) -> str | None:
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(folder, name)
        if folder and os.access(path, os.X_OK) and os.path.isfile(path):
            return path
    home = os.path.expanduser("~")
    for extra in (os.path.join(home, ".pyenv", "bin"), os.path.join(home, ".local", "bin"),
                  os.path.join(home, ".cargo", "bin"), "/opt/homebrew/bin", "/usr/local/bin"):
        path = os.path.join(extra, name)
        if os.access(path, os.X_OK) and os.path.isfile(path):
            return path
    return None


def _addresses() -> list[str]:
    text = run_tool(["ip", "-o", "addr", "show"]) or run_tool(["ifconfig"]) or ""
    found: list[str] = []
    for match in re.finditer(r"\binet6?\s+(?:addr:)?([0-9a-fA-F:.]+)", text):
        address = match.group(1)
        if address not in found:
            found.append(address)
    return found


def _processes() -> list[tuple[int, int, str]]:
    """(pid, ppid, command line) of every process we can read."""
    return [(pid, ppid, cmd) for pid, ppid, _, cmd in _process_table()]


def _process_table() -> Table:
    """(pid, ppid, process group, command line) of every process we can read."""
    out: Table = []
    if os.path.isdir("/proc/self"):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
                with open("/proc/%s/stat" % entry) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                ppid, pgid = int(fields[1]), int(fields[2])
            except (OSError, ValueError, IndexError):
                continue
            out.append((int(entry), ppid, pgid, cmd))
        return out
    text = run_tool(["ps", "-axww", "-o", "pid=,ppid=,pgid=,command="]) or ""
    for line in text.splitlines():
        parts = line.split(None, 3)
        if len(parts) >= 3 and all(p.isdigit() for p in parts[:3]):
            out.append((int(parts[0]), int(parts[1]), int(parts[2]),
                        parts[3] if len(parts) > 3 else ""))
    return out


# Set in the environment of every `ray start` saf runs (so of every process of that Ray):
# the node's Ray folder. Ray's client server (`python -m ray.util.client.server
# --mode=proxy`) and the dashboard's subprocesses name no session folder on their command
# line, and the client server's parent (`ray start`) is gone once Ray runs.
MARKER = "SAF_RAY_DIR"


def _marker(pid: int) -> str | None:
    """The SAF_RAY_DIR in a process's environment (Linux; None where it cannot be read)."""
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            env = f.read()
    except OSError:
        return None
    for item in env.split(b"\0"):
        if item.startswith(MARKER.encode() + b"="):
            return item.split(b"=", 1)[1].decode("utf-8", "replace")
    return None


def _in_dir(folder: str, temp_dir: str, nodes_too: bool) -> bool:
    root = temp_dir.rstrip("/")
    folder = folder.rstrip("/")
    return folder == root or nodes_too and re.match(re.escape(root) + r"/n\d+$", folder) is not None


def _session(table: Table, roots: Iterable[int], marked: Iterable[int]) -> set[int]:
    """Every process of the Ray that `roots` (processes found by their command line) and
    `marked` (found by saf's marker) belong to: them, the other members of their process
    groups (`ray start` runs in a session of its own; the group is Ray's alone once its
    leader, `ray start`, is gone, or when the leader is Ray's own), and all their
    descendants. Never this program's own group or its parent's."""
    me = os.getpid()
    mine = {_pgid(me), _pgid(os.getppid())}
    pids = {pid for pid, _, _, _ in table}
    found = set(roots) | set(marked)
    groups = {pgid for pid, _, pgid, _ in table if pid in found} - mine
    groups = {g for g in groups if g not in pids or g in found}
    members = {pid for pid, _, pgid, _ in table if pgid in groups}
    procs = [(pid, ppid, cmd) for pid, ppid, _, cmd in table]
    return _descendants(procs, found | members) - {me}


def ray_pids(table: Table, temp_dir: str, node_dir: str | None = None, name: str = "",
             sweep: bool = True) -> set[int]:
    """The processes of a Ray: with sweep, every Ray of temp_dir and of the node folders in
    it (the head, or a node alone on its machine); else one node's (its raylet named
    `name` and its own folder node_dir)."""
    me = os.getpid()
    if sweep:
        roots = [pid for pid, _, _, cmd in table if pid != me and _of(temp_dir, cmd)]
        marked = [pid for pid, _, _, _ in table if pid != me
                  and _in_dir(_marker(pid) or "", temp_dir, True)]
    else:
        roots = [pid for pid, _, _, cmd in table if pid != me and (
            node_dir and _of(node_dir, cmd) or _of(temp_dir, cmd)
            and _raylet_named(cmd, name))]
        marked = [pid for pid, _, _, _ in table if pid != me and node_dir
                  and _in_dir(_marker(pid) or "", node_dir, False)]
    return _session(table, roots, marked)


def _listeners(ports: Iterable[int], table: Table) -> dict[int, str]:
    """port -> who listens on it ("pid N (command line)"; "" when it is taken but the owner
    cannot be read), for the ports of `ports` something listens on."""
    found = listening(ports) or {}
    commands = {pid: cmd for pid, _, _, cmd in table}
    return {port: "pid %d (%s)" % (pids[0], commands.get(pids[0], "")[:200]) if pids else ""
            for port, pids in found.items()}


def _probe(target: str, timeout: float = 3.0) -> str:
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return "open"
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return "unreachable: %s" % (exc.strerror or exc)


def _ray_version() -> str | None:
    try:
        from importlib import metadata
        return metadata.version("ray")
    except Exception:  # noqa: BLE001 - not installed, or unreadable metadata: no Ray
        return None


# What Ray's own start needs beyond a minimal `pip install ray`: the dashboard (its module
# list is Ray's ray/dashboard/optional_deps.py, which `ray start` imports to decide whether
# to start the dashboard) and Ray Client (`grpc`, for the head's client server).
_DASHBOARD_MODULES = ("aiohttp", "aiohttp.web", "aiohttp_cors", "grpc", "opencensus",
                      "opentelemetry", "opentelemetry.exporter.prometheus",
                      "opentelemetry.proto", "prometheus_client", "pydantic")


def _ray_parts() -> dict[str, str | None]:
    """{"dashboard": why not, "client": why not}: None where that part of Ray imports.
    Ray's own check is run without importing Ray itself (seconds): its optional_deps.py
    is executed as it stands, else its module list imported."""
    missing: dict[str, str | None] = {"dashboard": None, "client": None}
    spec = importlib.util.find_spec("ray")
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = os.path.join(folders[0], "dashboard", "optional_deps.py") if folders else ""
    try:
        if os.path.isfile(path):
            with open(path) as f:
                exec(compile(f.read(), path, "exec"), {"__name__": "optional_deps"})
        else:
            for name in _DASHBOARD_MODULES:
                importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - an ImportError, or a broken package: missing
        missing["dashboard"] = "%s: %s" % (type(exc).__name__, exc)
    try:
        importlib.import_module("grpc")
    except Exception as exc:  # noqa: BLE001 - as above
        missing["client"] = "%s: %s" % (type(exc).__name__, exc)
    return missing


def _import_key() -> str:
    """What this Python can import, in one word: its program and each folder of its path with
    that folder's modification time (installing or removing a package there changes it). The
    cwd entry of `python -c` is left out: the home folder changes with anything made in it."""
    stamps = [sys.executable]
    for folder in sys.path:
        if not folder:
            continue
        try:
            stamps.append("%s:%d" % (folder, os.stat(folder).st_mtime_ns))
        except OSError:
            stamps.append("%s:-" % folder)
    return hashlib.sha256("\n".join(stamps).encode()).hexdigest()


def _known_parts(known: Any, key: str) -> dict[str, str | None] | None:
    """An earlier answer on Ray's parts saf sent back, where this node's import key is still
    the one it was given with (anything else: None, and the parts are imported again)."""
    if not isinstance(known, dict) or known.get("key") != key:
        return None
    parts = known.get("parts")
    if not isinstance(parts, dict):
        return None
    return {name: parts.get(name) for name in ("dashboard", "client")}


def _tool(name: str) -> str | None:
    path = _which(name)
    if path and "/libexec/" in path:  # pyenv's own PATH inside a shim: prefer its bin/
        outer = os.path.join(path.split("/libexec/")[0], "bin", name)
        if os.access(outer, os.X_OK):
            return outer
    return path


def _versions_of(tool: str, argv: list[str]) -> list[str] | None:
    path = _tool(tool)
    if not path:
        return None
    text = run_tool([path] + argv, timeout=20) or ""
    return sorted({m.group(0) for m in re.finditer(r"\b\d+\.\d+\.\d+\b", text)})


def _of(temp_dir: str, cmd: str) -> bool:
    """Whether a command line is of a Ray whose temp folder is temp_dir, or a node folder in
    it (`temp_dir/n<i>`: a worker sharing its machine with other nodes, saf.ray.command)."""
    root = re.escape(temp_dir.rstrip("/"))
    return re.search(root + r"/(n\d+/)?session_", cmd) is not None


def _raylet_named(cmd: str, name: str) -> bool:
    """Whether a command line is a raylet's started with --node-name=name."""
    return "raylet" in cmd.split(" ", 1)[0] and "--node-name=%s " % name in cmd + " "


def _arc_gpus(arc_ids: Any) -> int:
    """How many Intel Arc GPUs the node has: PCI devices of vendor 0x8086 whose device id is
    one of `arc_ids` (saf sends agents/arc_ids.py's), read under $SAF_FACTS_ROOT as the
    recipes' facts are."""
    base = os.environ.get("SAF_FACTS_ROOT", "") + "/sys/bus/pci/devices"
    wanted = set(arc_ids or ())
    count = 0
    try:
        devices = os.listdir(base)
    except OSError:
        return 0
    for dev in devices:
        try:
            with open(os.path.join(base, dev, "vendor")) as f:
                vendor = f.read().strip().lower()
            with open(os.path.join(base, dev, "device")) as f:
                device = int(f.read().strip(), 16)
        except (OSError, ValueError):
            continue
        if vendor == "0x8086" and device in wanted:
            count += 1
    return count


def facts(args: Args) -> Answer:
    now = time.time()  # first: the clock check halves the round trip around this
    temp_dir = args.get("temp_dir") or "/tmp/ray"
    node_name = args.get("node_name") or ""
    table = _process_table()
    procs = [(pid, cmd) for pid, _, _, cmd in table
             if _of(temp_dir, cmd) and pid != os.getpid()]
    node_dir = args.get("node_dir")
    raylet = [pid for pid, cmd in procs
              if _raylet_named(cmd, node_name)]
    # Counted as ray-down finds them: by Ray's folder on the command line, saf's marker in
    # the environment, and the process groups of those.
    everything = ray_pids(table, temp_dir)
    own = ray_pids(table, temp_dir, node_dir, node_name, sweep=False) if node_dir else set()
    record = None
    path = args.get("record")
    if path:
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):
            record = None
    ssh = os.environ.get("SSH_CONNECTION", "").split()
    nvidia = bool(_which("nvidia-smi")) or os.path.exists("/proc/driver/nvidia/version")
    result: Answer = {
        "python": "%d.%d.%d" % sys.version_info[:3],
        "executable": sys.executable,
        "prefix": sys.prefix,
        "fallback": os.environ.get("SAF_PY_FALLBACK") == "1",
        "venv": sys.prefix if sys.prefix != getattr(sys, "base_prefix", sys.prefix) else None,
        "ray": _ray_version(),
        "ray_bin": os.path.join(os.path.dirname(sys.executable), "ray"),
        "system": platform.system(),
        "machine": platform.machine(),
        "ssh_server_ip": ssh[2] if len(ssh) >= 4 else None,
        "addresses": _addresses(),
        "listeners": {str(k): v
                      for k, v in _listeners(args.get("ports") or [], table).items()},
        "ray_processes": len(everything),
        "node_processes": len(own),
        "raylet_running": bool(raylet),
        "gcs_running": any("gcs_server" in cmd.split(" ", 1)[0] for _, cmd in procs),
        "record": record,
        "nvidia": nvidia,
        "intel_arc": _arc_gpus(args.get("arc_ids")),
        "osx_cluster_env": os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"),
        "mlx": importlib.util.find_spec("mlx") is not None,
        "time": now,
        "probes": {t: _probe(t) for t in args.get("probe") or []},
    }
    parts = args.get("parts")
    # Importing the dashboard's modules takes most of a second: not worth it to a plan whose
    # Ray already runs (it started, so its parts import), which is every `saf up` after the
    # first.
    if parts and result["ray"] and not (parts == "unless_running" and raylet):
        # A `saf up` asks in its plan, then in its apply: the second time the first answer
        # stands unless something was installed or removed on the import path meanwhile.
        key = _import_key()
        result["ray_parts"] = _known_parts(args.get("parts_known"), key) or _ray_parts()
        result["parts_key"] = key
    if args.get("tools"):
        result["pyenv"] = _versions_of("pyenv", ["versions", "--bare"])
        result["uv"] = _versions_of("uv", ["python", "list", "--only-installed"])
        result["pyenv_bin"] = _tool("pyenv")
        result["uv_bin"] = _tool("uv")
    return result


def start(args: Args) -> Answer:
    """Start Ray in a session of its own (so the SSH command's end does not end it), then
    write the record of the settings it was started with."""
    env = dict(os.environ)
    # As an activated venv does: jobs that run `python` get the node's Python and its Ray.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(args.get("env") or {})
    if args.get("temp_dir"):
        env[MARKER] = args["temp_dir"]  # ray-down finds every process of this Ray by it
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    sys.stdout.flush()
    started_at = time.time()
    before = _raylet_logs(args.get("temp_dir"))
    proc = subprocess.Popen(args["argv"], env=env, start_new_session=True,
                            stdin=subprocess.DEVNULL)
    # `ray start` waits 30 s for a raylet that crashed at once (a port taken...): once the
    # raylet's log has its fatal line, the start is ended (its own process group) instead.
    crashed_at: float | None = None
    ended_early = False
    while proc.poll() is None:
        try:
            # Woken by the start's end at once (on the head that is the workers' wait, on a
            # worker the step's end), else every quarter second to read the raylet's log.
            proc.wait(timeout=0.25)
            break
        except subprocess.TimeoutExpired:
            pass
        if crashed_at is None:
            for path in _raylet_logs(args.get("temp_dir")) - before:
                if _fatal_lines(_read_lines(path, 64 << 10)):
                    crashed_at = time.time()
        elif time.time() - crashed_at > 1.0 and proc.poll() is None:
            ended_early = True
            _end_group(proc)
    code = 1 if ended_early else proc.returncode
    # This node's raylet log: the one this start created (several nodes may share the folder).
    new = sorted(_raylet_logs(args.get("temp_dir")) - before, key=_mtime)
    raylet_log = new[-1] if new else None
    # `ray start` can say it started while its raylet exits (an agent of it failed: its
    # port taken...), and the GCS then lists the node ALIVE until its health check gives up
    # on it, half a minute later: the node counts as started once its agents have written
    # their port files (Ray's session folder, `NAME_port_<node id>`), and not if its raylet
    # is gone first.
    raylet_alive = code != 0 or _agents_up(args.get("temp_dir") or "/tmp/ray",
                                           _flag(args["argv"], "--node-name"), raylet_log,
                                           float(args.get("agents_timeout", 20)))
    if code == 0 and not raylet_alive:
        code = 1
        _end_group(proc)  # what the start left (its monitors, agents) goes with it
    record_error = None
    if code == 0 and args.get("record"):
        try:
            _write_record(args["record"], args.get("settings") or {})
        except OSError as exc:
            # Without its record saf cannot tell this Ray's settings on the next run (nor
            # find its dashboard): the node fails, and the Ray it started goes with it.
            record_error = ("%s: %s" % (type(exc).__name__, exc))[:1000]
            code = 1
            _end_group(proc)
    return {"exit_status": code, "raylet_log": raylet_log, "ended_early": ended_early,
            "record_error": record_error,
            "started_at": started_at,
            "raylet_crashed": bool(raylet_log and _fatal_lines(_read_lines(raylet_log))),
            "raylet_gone": not raylet_alive}


def _write_record(path: str, settings: object) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write(path, json.dumps(settings))


def _group_left(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except OSError:
        return False
    return any(_alive(pid) for pid, _, _ in _processes() if _pgid(pid) == pgid)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _flag(argv: Iterable[object], name: str) -> str:
    for arg in argv:
        if isinstance(arg, str) and arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return ""


AGENT_PORT_FILES = ("runtime_env_agent_port", "dashboard_agent_listen_port")


def _agents_up(temp_dir: str, node_name: str, raylet_log: str | None, timeout: float) -> bool:
    """False when the node's raylet is gone before its agents are up; True once they are
    (or when that cannot be told: no raylet log, no node id, files not there in time)."""
    node_id = _node_id(_read_lines(raylet_log, 256 << 10)) if raylet_log else None
    session = os.path.dirname(os.path.dirname(raylet_log)) if raylet_log else None
    deadline = time.time() + timeout
    while True:
        if not _raylet_of(temp_dir, node_name):
            return False
        # It says so before it ends (which can take seconds).
        said = _read_lines(raylet_log, 256 << 10) if raylet_log else []
        if _fatal_lines(said) or any(_EXITING.search(line) for line in said):
            return False
        if not node_id or not session or time.time() > deadline or all(
                os.path.exists(os.path.join(session, "%s_%s" % (name, node_id)))
                for name in AGENT_PORT_FILES):
            return True
        time.sleep(0.2)


def _raylet_of(temp_dir: str, node_name: str) -> bool:
    """Whether a raylet of temp_dir named node_name runs (not a zombie)."""
    for pid, _, cmd in _processes():
        if _of(temp_dir, cmd) and _raylet_named(cmd, node_name) and _alive(pid):
            return True
    return False


def _end_group(proc: subprocess.Popen[bytes]) -> None:
    """End the start's process group (it runs in a session of its own): SIGTERM, then
    SIGKILL to whatever of the group is left after a grace."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except OSError:
        return
    try:
        proc.wait(timeout=3.0)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.time() + 3.0
    while time.time() < deadline and _group_left(proc.pid):
        time.sleep(0.1)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.wait()


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0


def _raylet_logs(temp_dir: str | None) -> set[str]:
    if not temp_dir:
        return set()
    pattern = os.path.join(temp_dir, "session_2*", "logs", "raylet*.out")
    return set(glob.glob(pattern))


def _read_lines(path: str, limit: int = 4 << 20) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []


# Ray's C++ log lines: "[2026-11-28 22:56:16,139 C 2751 2751] (raylet) file.cc:134: ..."
_LEVEL = re.compile(r"^\[[0-9-]+ [0-9:,]+ ([DIWECF]) \d+ \d+\]")
# A fatal error's stack trace ("*** StackTrace Information ***", "/path/bin(+0x23ccf4) [...]").
_FRAME = re.compile(r"^(\*\*\* .* \*\*\*|\S*\(\S*\+0x[0-9a-f]+\) \[0x[0-9a-f]+\].*)$")


# "[...] (raylet) agent_manager.cc:87: The raylet exited immediately because one Ray agent
# failed, agent_name = runtime_env_agent."
_EXITING = re.compile(r"^\[[^\]]* [ECF] \d+ \d+\] \(raylet\) .*The raylet exited")


def _at_levels(lines: Iterable[str], levels: str) -> list[str]:
    """Ray's log lines of these levels ("ECF": errors and worse)."""
    return [line for line in lines
            if (match := _LEVEL.match(line)) and match.group(1) in levels]


def _error_lines(lines: Iterable[str]) -> list[str]:
    return _at_levels(lines, "ECF")


def _fatal_lines(lines: Iterable[str]) -> list[str]:
    return _at_levels(lines, "CF")


def _node_id(lines: Iterable[str]) -> str | None:
    """The node id a raylet's log gives itself (the last one said), or None."""
    found = None
    for line in lines:
        match = re.search(r"Setting node ID node_id=([0-9a-f]+)", line)
        if match:
            found = match.group(1)
    return found


def _descendants(procs: Iterable[tuple[int, int, str]], roots: Iterable[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid, _ in procs:
        children.setdefault(ppid, []).append(pid)
    out: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo.extend(children.get(pid, []))
    return out


def stop(args: Args) -> Answer:
    """End this node's raylet and its children, and every process of its own node folder
    (`node_dir`); with sweep, every process of the temp dir and the node folders in it (the
    head, or the only node on its machine). SIGTERM, then SIGKILL after a grace; then the
    table is read again, since a Ray process may fork one (a worker, an agent's child) while it
    is being stopped, which no earlier reading held: up to three rounds."""
    temp_dir = args.get("temp_dir") or "/tmp/ray"
    node_dir = args.get("node_dir")
    name = args.get("node_name") or ""
    sweep = bool(args.get("sweep"))
    spared = {os.getpid(), os.getppid()}
    stopped: set[int] = set()
    killed = 0
    for _ in range(3):
        found = ray_pids(_process_table(), temp_dir, node_dir, name, sweep) - spared
        targets = {pid for pid in found - stopped if _alive(pid)}
        if not targets:
            break
        stopped |= targets
        killed += _end(targets, float(args.get("grace", 5)))
    if args.get("record"):
        try:
            os.remove(args["record"])
        except OSError:
            pass
    left = [cmd[:120] for pid, _, cmd in _processes()
            if pid in stopped and _alive(pid)]
    return {"stopped": len(stopped), "killed": killed, "left": left}


def _end(targets: set[int], grace: float) -> int:
    """SIGTERM `targets`, SIGKILL what is alive after `grace` seconds; how many were killed."""
    for pid in targets:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.time() + grace
    alive = set(targets)
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = {pid for pid in alive if _alive(pid)}
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.2 if alive else 0)
    return len(alive)


def _alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _log_lines(lines: Sequence[str]) -> list[str]:
    """Ray's own log lines (leaving out its periodic state dumps and stack-trace frames); all
    non-empty lines when none has Ray's format."""
    ours = [line for line in lines if _LEVEL.match(line)]
    return ours or [line for line in lines if line.strip() and not _FRAME.match(line)]


def tail(args: Args) -> Answer:
    """The end of this node's Ray logs: its raylet's log (`raylet`, the one its start made;
    else the newest) with its last error line kept, the newest non-empty .err file beside
    it (an agent's traceback), and the GCS log's lines about the node (`node_name`, or its
    node id) when the GCS log is here; Ray's log lines only (no state dumps, no stack-trace
    frames). With `since` (this node's clock when the start began), only raylet and agent
    logs written since count (an older session's would say nothing about this start), and
    the GCS log only beside one of them or when written since."""
    temp_dir = args.get("temp_dir") or "/tmp/ray"
    lines = int(args.get("lines", 6))
    name = args.get("node_name") or ""
    since = args.get("since")

    def fresh(path: str) -> bool:
        return since is None or _mtime(path) >= since - 1.0

    out: list[dict[str, object]] = []
    raylet = args.get("raylet")
    if not raylet or not os.path.isfile(raylet):
        found = sorted((f for f in glob.glob(os.path.join(args.get("node_dir") or temp_dir,
                                                          "session_latest", "logs",
                                                          "raylet*.out")) if fresh(f)),
                       key=_mtime)
        raylet = found[-1] if found else None
    node_id = None
    if raylet:
        text = _log_lines(_read_lines(raylet))
        node_id = _node_id(text)
        last = text[-lines:]
        fatal = [line for line in _error_lines(text)[-1:] if line not in last]
        out.append({"path": raylet, "what": "end", "lines": _cut(fatal + last)})
        # Why an agent of the raylet failed is in that agent's .err (a Python traceback).
        errs = sorted((f for f in glob.glob(os.path.join(os.path.dirname(raylet), "*.err"))
                       if os.path.getsize(f) > 0 and fresh(f)
                       and not os.path.basename(f).startswith(("gcs_server", "raylet"))),
                      key=_mtime)
        if errs:
            text = [line for line in _read_lines(errs[-1], 64 << 10)
                    if line.strip() and not _FRAME.match(line)]
            out.append({"path": errs[-1], "what": "end", "lines": _cut(text[-2:])})
    # The GCS log is in the head's session folder, when the head is on this machine.
    gcs = os.path.join(temp_dir, "session_latest", "logs", "gcs_server.out")
    if raylet and os.path.isfile(os.path.join(os.path.dirname(raylet), "gcs_server.out")):
        gcs = os.path.join(os.path.dirname(raylet), "gcs_server.out")
    # With no log of this start, an old GCS log here says nothing about it either; with
    # one, the GCS log is the cluster's (written when it had something to say).
    if os.path.isfile(gcs) and (raylet or fresh(gcs)):
        text = _log_lines(_read_lines(gcs))
        marks = ["node_name=%s" % name] if name else []
        marks += ["node_id=%s" % node_id] if node_id else []
        about = [line for line in text if any(
            line.endswith(m) or (m + " ") in line for m in marks)]
        if about:
            out.append({"path": gcs, "what": "about " + name, "lines": _cut(about[-2:])})
        else:
            out.append({"path": gcs, "what": "end, nothing about " + (name or "the node"),
                        "lines": _cut(text[-2:])})
    return {"logs": out}


def _cut(lines: Iterable[str]) -> list[str]:
    """Log lines as saf reads them (saf.ray.answers.Line): each at most 2000 characters."""
    return [line[:2000] for line in lines]


def probe(args: Args) -> Answer:
    timeout = float(args.get("timeout", 3))
    return {"probes": {t: _probe(t, timeout) for t in args.get("targets") or []}}


def main() -> None:
    action = sys.argv[1]
    args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    try:
        result: Answer = {
"facts": facts, "start": start, "stop": stop, "tail": tail,
                  "probe": probe}[action](args)
        result["answer"] = action  # the tag saf decodes the answer by (saf.ray.answers)
    except OSError as exc:
        # The node's own trouble (a folder of another user's, a full disk): said as one
        # line for saf to show as this node's failure, not a traceback.
        result = {"answer": "error", "error": "%s: %s" % (type(exc).__name__, exc)}
    sys.stdout.write("saf-ray " + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
