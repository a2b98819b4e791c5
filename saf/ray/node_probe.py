"""The program saf runs on a node (with the node's own Python, stdlib only, Python >= 3.9)
to read what Ray needs and to start and stop Ray there. It is sent on stdin
(`python - ACTION JSON`) and prints one JSON object; saf checks every field it reads
(saf.ray.facts), so nothing here is trusted.

Actions:
    facts {"ports": [...], "temp_dir": ..., "node_name": ..., "probe": ["host:port"]}
    start {"argv": [...], "env": {...}, "record": path, "settings": {...}}
    stop  {"temp_dir": ..., "node_name": ..., "sweep": bool}
    tail  {"temp_dir": ..., "lines": n}
    probe {"targets": ["host:port"], "timeout": s}
"""

import glob
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


def _run(argv, timeout=5.0):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _which(name):
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


def _addresses():
    text = _run(["ip", "-o", "addr", "show"]) or _run(["ifconfig"]) or ""
    found = []
    for match in re.finditer(r"\binet6?\s+(?:addr:)?([0-9a-fA-F:.]+)", text):
        address = match.group(1)
        if address not in found:
            found.append(address)
    return found


def _processes():
    """(pid, ppid, command line) of every process we can read."""
    out = []
    if os.path.isdir("/proc/self"):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
                with open("/proc/%s/stat" % entry) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            out.append((int(entry), ppid, cmd))
        return out
    text = _run(["ps", "-axww", "-o", "pid=,ppid=,command="]) or ""
    for line in text.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            out.append((int(parts[0]), int(parts[1]), parts[2] if len(parts) > 2 else ""))
    return out


def _listeners_linux(ports):
    inodes = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":  # 0A: LISTEN
                continue
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if port in ports:
                inodes[fields[9]] = port
    owners = {port: "" for port in inodes.values()}
    if not inodes:
        return owners
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir("/proc/%s/fd" % entry)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink("/proc/%s/fd/%s" % (entry, fd))
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                try:
                    with open("/proc/%s/cmdline" % entry, "rb") as f:
                        cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
                except OSError:
                    cmd = ""
                owners[inodes[target[8:-1]]] = "pid %s (%s)" % (entry, cmd[:200])
    return owners


def _listeners(ports):
    """port -> who listens on it ("" when it is taken but the owner cannot be read)."""
    ports = set(ports)
    if not ports:
        return {}
    if os.path.isdir("/proc/net"):
        return _listeners_linux(ports)
    owners = {}
    for port in ports:
        text = _run(["lsof", "-nP", "-iTCP:%d" % port, "-sTCP:LISTEN"])
        if text:
            rows = text.splitlines()[1:]
            if rows:
                parts = rows[0].split()
                owners[port] = "pid %s (%s)" % (parts[1], parts[0]) if len(parts) > 1 else ""
    return owners


def _probe(target, timeout=3.0):
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


def _ray_version():
    try:
        from importlib import metadata
        return metadata.version("ray")
    except Exception:  # noqa: BLE001 - not installed, or unreadable metadata: no Ray
        return None


def _tool(name):
    path = _which(name)
    if path and "/libexec/" in path:  # pyenv's own PATH inside a shim: prefer its bin/
        outer = os.path.join(path.split("/libexec/")[0], "bin", name)
        if os.access(outer, os.X_OK):
            return outer
    return path


def _versions_of(tool, argv):
    path = _tool(tool)
    if not path:
        return None
    text = _run([path] + argv, timeout=20) or ""
    return sorted({m.group(0) for m in re.finditer(r"\b\d+\.\d+\.\d+\b", text)})


def facts(args):
    now = time.time()  # first: the clock check halves the round trip around this
    temp_dir = args.get("temp_dir") or "/tmp/ray"
    marker = temp_dir.rstrip("/") + "/session_"
    node_name = args.get("node_name") or ""
    procs = [(pid, cmd) for pid, _, cmd in _processes()
             if marker in cmd and pid != os.getpid()]
    raylet = [pid for pid, cmd in procs
              if "raylet" in cmd.split(" ", 1)[0] and "--node-name=%s " % node_name in cmd + " "]
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
    result = {
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
        "listeners": {str(k): v for k, v in _listeners(args.get("ports") or []).items()},
        "ray_processes": len(procs),
        "raylet_running": bool(raylet),
        "gcs_running": any("gcs_server" in cmd.split(" ", 1)[0] for _, cmd in procs),
        "record": record,
        "nvidia": nvidia,
        "osx_cluster_env": os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"),
        "mlx": importlib.util.find_spec("mlx") is not None,
        "time": now,
        "probes": {t: _probe(t) for t in args.get("probe") or []},
    }
    if args.get("tools"):
        result["pyenv"] = _versions_of("pyenv", ["versions", "--bare"])
        result["uv"] = _versions_of("uv", ["python", "list", "--only-installed"])
        result["pyenv_bin"] = _tool("pyenv")
        result["uv_bin"] = _tool("uv")
    return result


def start(args):
    """Start Ray in a session of its own (so the SSH command's end does not end it), then
    write the record of the settings it was started with."""
    env = dict(os.environ)
    # As an activated venv does: jobs that run `python` get the node's Python and its Ray.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(args.get("env") or {})
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    sys.stdout.flush()
    proc = subprocess.Popen(args["argv"], env=env, start_new_session=True,
                            stdin=subprocess.DEVNULL)
    code = proc.wait()
    if code == 0 and args.get("record"):
        folder = os.path.dirname(args["record"])
        os.makedirs(folder, exist_ok=True)
        tmp = args["record"] + ".tmp"
        with open(tmp, "w") as f:
            json.dump(args.get("settings") or {}, f)
        os.replace(tmp, args["record"])
    return {"exit_status": code}


def _descendants(procs, roots):
    children = {}
    for pid, ppid, _ in procs:
        children.setdefault(ppid, []).append(pid)
    out, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in out:
            out.add(pid)
            todo.extend(children.get(pid, []))
    return out


def stop(args):
    """End this node's raylet and its children; with sweep, every process of the temp dir
    (the head, or the only node on its machine). SIGTERM, then SIGKILL after a grace."""
    marker = (args.get("temp_dir") or "/tmp/ray").rstrip("/") + "/session_"
    name = args.get("node_name") or ""
    me = os.getpid()
    procs = _processes()
    if args.get("sweep"):
        roots = [pid for pid, _, cmd in procs if marker in cmd and pid != me]
    else:
        roots = [pid for pid, _, cmd in procs if marker in cmd
                 and "raylet" in cmd.split(" ", 1)[0] and "--node-name=%s " % name in cmd + " "]
    targets = _descendants(procs, roots) - {me, os.getppid()}
    for pid in targets:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.time() + float(args.get("grace", 5))
    alive = set(targets)
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = {pid for pid in alive if _alive(pid)}
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if args.get("record"):
        try:
            os.remove(args["record"])
        except OSError:
            pass
    time.sleep(0.2 if alive else 0)
    left = [cmd[:120] for pid, _, cmd in _processes()
            if pid in targets and _alive(pid)]
    return {"stopped": len(targets), "killed": len(alive), "left": left}


def _alive(pid):
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


def tail(args):
    """The last lines of this node's newest raylet log and the GCS log."""
    temp_dir = args.get("temp_dir") or "/tmp/ray"
    lines = int(args.get("lines", 15))
    out = {}
    logs = os.path.join(temp_dir, "session_latest", "logs")
    for pattern in ("raylet*.out", "gcs_server*.out", "raylet*.err"):
        files = sorted(glob.glob(os.path.join(logs, pattern)), key=os.path.getmtime)
        if files:
            try:
                with open(files[-1], errors="replace") as f:
                    out[files[-1]] = f.read().splitlines()[-lines:]
            except OSError:
                pass
    return {"logs": out}


def probe(args):
    timeout = float(args.get("timeout", 3))
    return {"probes": {t: _probe(t, timeout) for t in args.get("targets") or []}}


def main():
    action = sys.argv[1]
    args = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    result = {"facts": facts, "start": start, "stop": stop, "tail": tail,
              "probe": probe}[action](args)
    sys.stdout.write("saf-ray " + json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
