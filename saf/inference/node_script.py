"""The part of model serving that runs ON the node, under the node's own Python (3.9 or newer,
stdlib only): saf sends this file's text with `python3 -c` and one JSON argument.

It starts a model server detached from the SSH session (its own session and process group,
stdin from /dev/null, stdout and stderr to a log file), so it survives saf and the SSH
connection; it writes a small state record, ~/.saf/serve/<port>.json (atomically), so that any
later saf finds the server again; and it lists, probes, stops and tails those servers.

Every answer is JSON lines on stdout; the operator validates them (saf.inference.records). This
module imports nothing of saf: it is a program of its own, like the agent.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import time
from typing import Any

from saf.agents.node_common import atomic_write, listening, run_tool

RECORD_VERSION = 1
ENGINES = ("vllm", "mlx", "llama-server", "llama-cpp-python")


def records_dir() -> str:
    # Still ~/.saf/serve (model serving's old name): records that an older saf left on a node
    # are found where it wrote them.
    return os.path.join(os.path.expanduser("~"), ".saf", "serve")


def say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


# -- process identity -------------------------------------------------------------------------
def process_started(pid: int) -> str | None:
    """A stamp of when `pid` started (so a reused pid is not taken for our server), or None
    when there is no such process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            # The command name may hold spaces or parentheses: the fields start after the last ')'.
            return "linux:" + f.read().rsplit(")", 1)[1].split()[19]
    except FileNotFoundError:
        return None
    except OSError:
        pass
    out = (run_tool(["ps", "-o", "lstart=", "-p", str(pid)]) or "").strip()
    return ("ps:" + " ".join(out.split())) if out else None


def reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def alive(record: dict[str, Any]) -> bool:
    pid = record["pid"]
    reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = process_started(pid)
    return started is not None and started == record.get("pid_start")


# -- records ----------------------------------------------------------------------------------
FIELDS = {"saf_serve": int, "port": int, "host": str, "engine": str, "model": str, "pid": int,
          "started": float, "log": str, "argv": list}


def record_problem(record: Any, port: int | None) -> str | None:
    if not isinstance(record, dict):
        return "not a JSON object"
    for key, kind in FIELDS.items():
        value = record.get(key)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            return "field %r is missing or not a %s" % (key, kind.__name__)
    if not all(isinstance(word, str) for word in record["argv"]):
        return "field 'argv' is not a list of strings"
    if record["saf_serve"] != RECORD_VERSION:
        return "record version %r (this saf reads %d)" % (record["saf_serve"], RECORD_VERSION)
    if port is not None and record["port"] != port:
        return "names port %r but is the file of port %d" % (record["port"], port)
    if not 1 <= record["port"] <= 65535 or record["pid"] <= 1:
        return "port or pid out of range"
    if record["engine"] not in ENGINES:
        return "unknown engine %r" % record["engine"]
    return None


def record_path(port: int) -> str:
    return os.path.join(records_dir(), "%d.json" % port)


def log_path(port: int) -> str:
    return os.path.join(records_dir(), "%d.log" % port)


def read_record(port: int) -> tuple[dict[str, Any] | None, str | None]:
    """(record, problem): (None, None) when there is none."""
    try:
        with open(record_path(port)) as f:
            record = json.load(f)
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        return None, "unreadable: %s" % exc
    problem = record_problem(record, port)
    return (None, problem) if problem else (record, None)


def write_record(record: dict[str, Any]) -> None:
    atomic_write(record_path(record["port"]), json.dumps(record))


def remove_record(port: int) -> None:
    try:
        os.unlink(record_path(port))
    except FileNotFoundError:
        pass


def tail(path: str, lines: int, since: int = 0) -> list[str]:
    """The last `lines` lines of a file from byte `since` on (bounded: the last 256 KiB)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            end = f.tell()
            start = max(since, end - 256 * 1024)
            f.seek(start)
            data = f.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()[-lines:]


# -- servers kept by the init system (persist = true) -----------------------------------------
def _started_at(pid: int) -> float:
    try:
        return os.stat("/proc/%d" % pid).st_ctime
    except OSError:
        return time.time()


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 1:
        return False
    reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return process_started(pid) is not None


def kept_state(kept: dict[str, Any]) -> dict[str, Any]:
    """The server's process as its keeper says: {"pid", "restarts", "starting"} (saf's
    supervisor's files, `systemctl show`, or `launchctl print`)."""
    manager, service = str(kept.get("manager")), str(kept.get("service"))
    unit = "saf-%s.service" % service
    pid, restarts, starting = None, None, False
    if manager == "detached":
        folder = os.path.join(os.path.expanduser("~"), ".saf", "services", service)
        try:
            with open(os.path.join(folder, "state.json")) as f:
                state = json.load(f)
        except (OSError, ValueError):
            state = {}
        try:
            with open(os.path.join(folder, "supervisor.pid")) as f:
                supervisor = int(f.read().strip())
        except (OSError, ValueError):
            supervisor = None
        pid = state.get("pid") if _pid_alive(state.get("pid")) else None
        restarts = state.get("restarts")
        starting = pid is None and _pid_alive(supervisor)
    elif manager in ("systemd", "systemd-user"):
        user = manager == "systemd-user"
        if user:
            os.environ.setdefault("XDG_RUNTIME_DIR", "/run/user/%d" % os.getuid())
        out = run_tool(["systemctl"] + (["--user"] if user else []) + [
            "show", "-p", "MainPID,NRestarts,ActiveState", unit]) or ""
        props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        pid = int(props.get("MainPID", "0") or 0) or None
        restarts = int(props["NRestarts"]) if props.get("NRestarts", "").isdigit() else None
        starting = pid is None and props.get("ActiveState") in ("activating", "reloading")
    elif manager.startswith("launchd"):
        domain = "system" if manager == "launchd-daemon" else "gui/%d" % os.getuid()
        out = run_tool(["launchctl", "print", "%s/saf-%s" % (domain, service)]) or ""
        props = {}
        for line in out.splitlines():
            key, sep, value = line.strip().partition(" = ")
            if sep:
                props.setdefault(key, value)
        pid = int(props["pid"]) if props.get("pid", "").isdigit() else None
        runs = int(props["runs"]) if props.get("runs", "").isdigit() else None
        restarts = max(runs - 1, 0) if runs else None
        starting = pid is None
    return {"pid": pid if isinstance(pid, int) and pid > 1 else None,
            "restarts": restarts if isinstance(restarts, int) else None, "starting": starting}


def refresh(record: dict[str, Any]) -> dict[str, Any] | None:
    """A kept server's record brought up to date with its keeper (the pid changes when it
    restarts it): the keeper's state, None for a detached server."""
    kept = record.get("kept")
    if not isinstance(kept, dict):
        return None
    state = kept_state(kept)
    record["restarts"] = state["restarts"]
    pid = state["pid"]
    if pid and pid != record["pid"]:
        record.update(pid=pid, pid_start=process_started(pid), started=_started_at(pid))
        write_record(record)
    return state


def adopt(spec: dict[str, Any]) -> int:
    """A server just started by its keeper: write its record (with how it is kept) once its
    process is there, and wait until it is ready."""
    port, kept = int(spec["port"]), dict(spec["kept"])
    os.makedirs(records_dir(), mode=0o700, exist_ok=True)
    log = str(kept.get("log") or "")
    timeout = float(spec.get("timeout", 600))
    begun, deadline = time.time(), time.monotonic() + timeout
    record: dict[str, Any] | None = None
    state = "starting"
    while True:
        pid = kept_state(kept)["pid"]
        if pid and (record is None or record["pid"] != pid):
            record = {"saf_serve": RECORD_VERSION, "port": port, "host": str(spec["host"]),
                      "engine": spec["engine"], "model": spec["model"], "pid": pid,
                      "pid_start": process_started(pid), "started": _started_at(pid),
                      "log": log, "argv": [str(a) for a in spec["argv"]], "kept": kept,
                      "restarts": kept_state(kept)["restarts"]}
            write_record(record)
            say(event="started", record=record)
        if record is not None and pid == record["pid"]:
            state = probe(record)
            if state == "ready":
                say(event="ready", record=record, seconds=round(time.time() - begun, 3))
                return 0
        if time.monotonic() >= deadline:
            say(event="failed", why="not ready after %g s under %s (last state: %s)"
                % (timeout, kept.get("manager"), state),
                tail=tail(log, 20) if log.startswith("/") else [])
            return 1
        time.sleep(0.25)


# -- readiness --------------------------------------------------------------------------------
def http(url: str, body: dict[str, Any] | None = None, timeout: float = 3.0) -> int:
    """The HTTP status of a GET (or a POST of `body`), 0 when nothing answered."""
    # Imported here: urllib.request (http.client, email, ssl) is most of this program's
    # start-up (0.1 s on a loaded node), and a list with no server to probe never needs it.
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read(65536)
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (OSError, ValueError):
        return 0


def listeners(port: int) -> set[int] | None:
    """The pids listening on TCP `port` (Linux: /proc; macOS: lsof), or None when this node
    cannot tell."""
    found = listening([port])
    return None if found is None else set(found.get(port, []))


def owns_port(record: dict[str, Any]) -> bool:
    """Whether the port is served by this server's process group (or this node cannot tell),
    so that another program answering on the port is not taken for it."""
    pids = listeners(record["port"])
    if pids is None or not pids:
        return pids is None
    for pid in pids:
        try:
            if pid == record["pid"] or os.getpgid(pid) == record["pid"]:
                return True
        except OSError:
            continue
    return False


def probe(record: dict[str, Any]) -> str:
    """ready, loading (answers but the model is not in yet) or starting (nothing answers).

    llama-server's /health answers 503 while the model loads; vLLM's /health answers once the
    engine is up; llama-cpp-python loads the model before it listens, so any answer from
    /v1/models means ready; mlx_lm.server's /health says nothing about the model, so only a
    one-token completion does."""
    host = record["host"]
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    base = "http://%s:%d" % ("[%s]" % host if ":" in host else host, record["port"])
    engine = record["engine"]
    if engine == "mlx":
        status = http(base + "/v1/completions", {"prompt": "hi", "max_tokens": 1}, timeout=30)
    elif engine == "llama-cpp-python":
        status = http(base + "/v1/models")
    else:
        status = http(base + "/health")
    if status == 200:
        return "ready" if owns_port(record) else "starting"
    return "starting" if status == 0 else "loading"


# -- commands ---------------------------------------------------------------------------------
def port_taken(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        # As servers do: a port whose old connections linger in TIME_WAIT is free to them.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def home_path(path: str) -> str:
    """`~/x` is x in the home folder; any other path is as written."""
    return os.path.join(os.path.expanduser("~"), path[2:]) if path.startswith("~/") else path


def launch(argv: list[str], log: str) -> int:
    """Start argv in its own session (so neither the SSH channel's end nor saf's guard, which
    kills its process group, reaches it), logging to `log`; its pid."""
    pid = os.fork()
    if pid == 0:  # the child: becomes the server
        try:
            os.setsid()
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            # Nothing of saf's SSH channel may stay open in the server (the guard's fd 3).
            os.closerange(3, 65536)
            os.chdir(os.path.expanduser("~"))
            os.execvp(argv[0], argv)
        except BaseException as exc:  # noqa: BLE001 - anything here must end in the log
            os.write(2, ("saf: could not start %s: %s\n" % (argv[0], exc)).encode())
        os._exit(127)
    return pid


def start(spec: dict[str, Any]) -> int:
    port, host, argv = int(spec["port"]), str(spec["host"]), [str(a) for a in spec["argv"]]
    os.makedirs(records_dir(), mode=0o700, exist_ok=True)
    record, problem = read_record(port)
    if record is not None and alive(record):
        same = record["engine"] == spec["engine"] and record["model"] == spec["model"]
        if same and record["argv"] == argv:
            say(event="skipped", record=record, state=probe(record))
            return 0
        say(event="failed", why="port %d already serves %s (%s, pid %d); stop it first"
            % (port, record["model"], record["engine"], record["pid"]), tail=[])
        return 1
    if port_taken(host, port):
        say(event="failed", why="port %d on %s is in use by a program saf did not start"
            % (port, host), tail=[])
        return 1
    # saf's one rule for ~/ (saf.shell.path_arg on the operator's side), for every word as
    # sh expands an unquoted one: the program may be the inventory's `~/venv/bin/python`, its
    # `/usr/bin/env ~/venv/bin/python`, or a `bin` of `~/.saf/venv/bin`. The record keeps
    # argv as saf wrote it, so a rerun compares like with like.
    run = [home_path(word) for word in argv]
    if shutil.which(run[0]) is None:
        say(event="failed", why="%s is not installed on this node (not on PATH: %s)"
            % (run[0], os.environ.get("PATH", "")), tail=[])
        return 1
    log = log_path(port)
    if os.path.exists(log):
        os.replace(log, log + ".1")  # the previous run's log, kept once
    with open(log, "a") as f:
        f.write("saf: starting %s at %s\n" % (" ".join(argv), time.strftime("%Y-%m-%dT%H:%M:%S")))
    pid = launch(run, log)
    record = {"saf_serve": RECORD_VERSION, "port": port, "host": host, "engine": spec["engine"],
              "model": spec["model"], "pid": pid, "pid_start": process_started(pid),
              "started": time.time(), "log": log, "argv": argv}
    up = spec.get("up")
    if isinstance(up, dict):  # saf up's mark: the cluster and the model it declared
        record["up"] = {"cluster": str(up.get("cluster", "")), "model": str(up.get("model", ""))}
    write_record(record)
    say(event="started", record=record)
    deadline = time.monotonic() + float(spec.get("timeout", 600))
    while True:
        if not alive(record):
            remove_record(port)
            say(event="failed", why="the server exited before it was ready",
                tail=tail(log, 20))
            return 1
        state = probe(record)
        if state == "ready":
            say(event="ready", record=record, seconds=round(time.time() - record["started"], 3))
            return 0
        if time.monotonic() >= deadline:
            lines = tail(log, 20)
            stop_pid(record, 5.0)
            remove_record(port)
            say(event="failed", why="not ready after %g s (last state: %s); stopped it"
                % (float(spec.get("timeout", 600)), state), tail=lines)
            return 1
        time.sleep(0.25)


def stop_pid(record: dict[str, Any], grace: float) -> bool:
    """TERM the server's process group (vLLM's workers too), KILL it after `grace` s."""
    pid = record["pid"]
    if not alive(record):
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not alive(record):
                return True
            time.sleep(0.05)
    return not alive(record)


def listing(probe_health: bool) -> int:
    folder = records_dir()
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        names = []
    for name in names:
        if not name.endswith(".json") or not name[:-5].isdigit():
            continue
        port = int(name[:-5])
        record, problem = read_record(port)
        if record is None:
            say(event="bad", port=port, why=problem or "unreadable")
            continue
        keeper = refresh(record)
        up = alive(record)
        state = (probe(record) if probe_health else "running") if up else \
            "starting" if keeper and keeper["starting"] else "exited"
        say(event="server", record=record, state=state,
            uptime=round(time.time() - record["started"], 1) if up else None)
    return 0


def stop(port: int, grace: float) -> int:
    record, problem = read_record(port)
    if record is None:
        say(event="stopped", port=port, was=None, why=problem or "no server on this port")
        return 0 if problem is None else 1
    killed = stop_pid(record, grace)
    remove_record(port)
    say(event="stopped", port=port, was=record, killed=killed)
    return 0


def logs(port: int, lines: int) -> int:
    record, _ = read_record(port)
    path = record["log"] if record is not None else log_path(port)
    if not os.path.exists(path):
        say(event="logs", port=port, path=path, lines=None)
        return 1
    say(event="logs", port=port, path=path, lines=tail(path, lines))
    return 0


def main(args: list[str]) -> int:
    request = json.loads(args[0])
    op = request["op"]
    if op == "start":
        return start(request)
    if op == "kept":
        return adopt(request)
    if op == "list":
        return listing(bool(request.get("probe", True)))
    if op == "stop":
        return stop(int(request["port"]), float(request.get("grace", 10)))
    if op == "logs":
        return logs(int(request["port"]), int(request.get("lines", 50)))
    say(event="failed", why="unknown op %r" % op, tail=[])
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
