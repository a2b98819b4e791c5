"""saf's supervisor for a service on a node with no init system saf can use (a container,
no systemd running). Copied to ~/.saf/services/NAME/supervise.py and run by the node's own
Python (3.9, stdlib only: this file imports nothing of saf).

    supervise.py run FOLDER     start the service of FOLDER/spec.json, detached, and keep its
                                restart policy while the node is up (NOT across reboots)
    supervise.py status FOLDER  one JSON line: supervisor and service alive, pids, restarts
    supervise.py stop FOLDER    end the supervisor and the service's process group

FOLDER holds spec.json (argv, workdir, env, env_file, restart, cpus, numa), supervisor.pid,
state.json (written atomically at each change) and service.log (the service's output).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import IO, Any

RESTART_SEC = 2
GRACE = 5


def _write(folder: str, name: str, data: Any) -> None:
    tmp = os.path.join(folder, name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, os.path.join(folder, name))


def _read(folder: str, name: str) -> Any:
    try:
        with open(os.path.join(folder, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _alive(pid: Any) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive (its parent has not reaped it yet)
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _unquote(text: str) -> str:
    """A value as sh reads it: inside "..." a backslash escapes only a backslash, a double
    quote, a dollar and a backquote (as env_file_text writes them); '...' is literal."""
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    if len(text) >= 2 and text[0] == text[-1] == '"':
        out, i, body = [], 0, text[1:-1]
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body) and body[i + 1] in '\\"$`':
                out.append(body[i + 1])
                i += 2
            else:
                out.append(body[i])
                i += 1
        return "".join(out)
    return text


def _env_file(path: str) -> dict[str, str]:
    """KEY="value" lines (saf.cluster.units.env_file_text), read as sh reads them."""
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("export "):
                line = line[len("export "):].lstrip()
            key, sep, value = line.partition("=")
            if line.startswith("#") or not sep or not key.replace("_", "a").isalnum():
                continue
            env[key] = _unquote(value)
    return env


def _argv(spec: dict[str, Any]) -> list[str]:
    argv = list(spec["argv"])
    if spec.get("numa") is not None and shutil.which("numactl"):
        node = str(spec["numa"])
        argv = ["numactl", "--cpunodebind=" + node, "--membind=" + node] + argv
    if spec.get("cpus") and shutil.which("taskset"):
        argv = ["taskset", "-c", spec["cpus"]] + argv
    return argv


def detach(folder: str) -> None:
    """Fork; the child leaves the SSH session (its own session: neither the channel's end nor
    saf's guard, which kills its process group, reaches it) and holds none of its files. The
    parent returns once the child is out, so the caller's command ends with it detached."""
    ready, told = os.pipe()
    if os.fork():
        os.close(told)
        os.read(ready, 1)
        os._exit(0)
    os.close(ready)
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, told)
    os.closerange(told + 1, 65536)
    _write(folder, "supervisor.pid", os.getpid())
    os.write(told, b"x")
    os.close(told)


def _run_once(folder: str, spec: dict[str, Any], env: dict[str, str], log: IO[bytes],
              state: dict[str, Any], stop: dict[str, float | None]) -> int:
    """Start the service once and wait for it to end (killed GRACE seconds after a stop was
    asked); its exit status, 127 when it could not start."""
    try:
        child = subprocess.Popen(_argv(spec), cwd=spec.get("workdir") or None, env=env,
                                 stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        log.write(("saf supervisor: cannot start: %s\n" % exc).encode())
        log.flush()
        return 127
    state.update(pid=child.pid, since=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    _write(folder, "state.json", state)
    while True:
        try:
            return child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            if stop["at"] is not None and time.time() - stop["at"] > GRACE:
                try:
                    os.killpg(child.pid, signal.SIGKILL)
                except OSError:
                    pass


def run(folder: str) -> None:
    folder = os.path.abspath(folder)
    spec = _read(folder, "spec.json")
    detach(folder)
    state: dict[str, Any] = {"supervisor": os.getpid(), "restarts": 0, "pid": None, "since": None,
             "last_exit": None, "policy": spec["restart"], "stopped": False}
    stop: dict[str, float | None] = {"at": None}

    def on_term(signum: int, frame: Any) -> None:
        stop["at"] = time.time()
        if state["pid"]:
            try:
                os.killpg(state["pid"], signal.SIGTERM)
            except OSError:
                pass

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    env = dict(os.environ)
    env.update(spec.get("env") or {})
    if spec.get("env_file"):
        env.update(_env_file(spec["env_file"]))
    log = open(os.path.join(folder, "service.log"), "ab")
    while stop["at"] is None:
        code = _run_once(folder, spec, env, log, state, stop)
        state.update(pid=None, last_exit=code)
        _write(folder, "state.json", state)
        policy = spec["restart"]
        if stop["at"] is not None or policy == "no" or (policy == "on-failure" and code == 0):
            break
        until = time.time() + RESTART_SEC
        while stop["at"] is None and time.time() < until:
            time.sleep(0.1)
        if stop["at"] is None:
            state["restarts"] += 1
    state.update(supervisor=None, stopped=stop["at"] is not None)
    _write(folder, "state.json", state)
    try:
        os.remove(os.path.join(folder, "supervisor.pid"))
    except OSError:
        pass


def status(folder: str) -> None:
    state = _read(folder, "state.json") or {}
    supervisor = _read(folder, "supervisor.pid")
    pid = state.get("pid")
    print(json.dumps({"supervisor": supervisor if _alive(supervisor) else None,
                      "pid": pid if _alive(pid) else None,
                      "restarts": state.get("restarts", 0), "since": state.get("since"),
                      "last_exit": state.get("last_exit"), "policy": state.get("policy"),
                      "stopped": state.get("stopped", False),
                      "installed": os.path.exists(os.path.join(folder, "spec.json"))}))


def stop(folder: str) -> int:
    supervisor = _read(folder, "supervisor.pid")
    if _alive(supervisor):
        os.kill(supervisor, signal.SIGTERM)
        deadline = time.time() + GRACE + 5
        while _alive(supervisor) and time.time() < deadline:
            time.sleep(0.1)
        if _alive(supervisor):
            os.kill(supervisor, signal.SIGKILL)
    # The service's group, in case the supervisor was killed without its say.
    pid = (_read(folder, "state.json") or {}).get("pid")
    if pid and _alive(pid):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except OSError:
                pass
            deadline = time.time() + GRACE
            while _alive(pid) and time.time() < deadline:
                time.sleep(0.1)
            if not _alive(pid):
                break
    left = [p for p in (supervisor, pid) if _alive(p)]
    print(json.dumps({"left": left}))
    return 1 if left else 0


if __name__ == "__main__":
    action, where = sys.argv[1], sys.argv[2]
    if action == "run":
        run(where)
    elif action == "status":
        status(where)
    else:
        sys.exit(stop(where))
