"""`saf up`, `saf status`, `saf up --check` and `saf down` end to end on three nodes in their
own network namespaces (tests/helpers/netns.py: alpha, beta, gamma behind a bridge, each with
its own SSH server on its veth address and its own home), and a secret that reaches nothing but
the 0600 files on the nodes. Each node is a machine of its own for what runs there
(tests/helpers/own_machine.py: its own process table, /tmp and /dev/shm), as Ray needs: it
keeps its files in /tmp/ray on every node, and saf finds a node's Ray processes by their
command lines; saf's records on a node name pids of its own table (`Stack.here` finds them).

The declaration: a prepare recipe in `[up]`, `[ray]` (the head on alpha, workers on beta and
gamma, each with a resource declared; started detached, persist = false), a heartbeat
service on every node (restart always, its env_file holding the planted token), and two
llama.cpp models on the generated GGUF: `tiny` pinned to gamma and started detached
(`persist = false`, with the same env_file), `placed` with `placement = "auto"` (kept by
saf's supervisor as service model-placed). There is no init system saf may use on these
nodes (SAF_FACTS_ROOT points at an empty tree), so saf's own supervisor keeps the services.

The evidence is the nodes' own: the processes inside each namespace (`ip netns pids`), the
heartbeat files growing, completions asked from inside the node's namespace (the servers
listen on the node's 127.0.0.1), the supervisors' records, `ray status` inside the head's.
Ray's start is the slow part (about half a minute on two busy cores): one Ray cluster for
the module.

One cluster for the module; the tests run in order, each on what the one before left (the
first failure skips the rest, whose premise it broke). The cluster is torn down, and every
process in its namespaces killed, whatever happened."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import tomli_w

from tests.helpers import procs
from tests.helpers.servers import free_port
from tests.helpers.up_netns import NAMES, UpNetns, in_order, up_netns
from tests.helpers.waiting import until

TOKEN = "hf_NETNS" + uuid.uuid4().hex[:20]
PREPARE = """name = "prepare"
description = "leave a marker"
[[steps]]
name = "leave a marker"
creates = "~/.saf/prepared"
run = 'mkdir -p "$HOME"/.saf && date > "$HOME"/.saf/prepared'
"""
BEAT = """import os, time
path = os.path.expanduser("~/heartbeat")
while True:
    with open(path, "a") as f:
        f.write("%d %s %f\\n" % (os.getpid(), "HF_TOKEN" in os.environ, time.time()))
    time.sleep(0.2)
"""
# [ray]: the head on alpha, workers on beta and gamma, each with its resources declared.
RESOURCES = {"alpha": {"Head": 1.0}, "beta": {"Apple": 1.0}, "gamma": {"Banana": 2.0}}
RAY_TEMP = "/tmp/ray"  # Ray's own default, on each node's own /tmp


class Stack(UpNetns):
    marker: str
    tiny_port: int
    placed_port: int

    def home(self, node: str) -> Path:
        return self.net.home(node)

    def here(self, node: str, pid: int | None) -> int | None:
        """The pid here of the node's process `pid` (as saf's records on the node name it:
        each node has its own process table)."""
        return None if pid is None else self.net.host_pid(node, pid)

    def beats(self, node: str) -> int:
        path = self.home(node) / "heartbeat"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def record(self, node: str, port: int) -> dict | None:
        with contextlib.suppress(OSError, ValueError):
            return json.loads((self.home(node) / ".saf" / "serve" / f"{port}.json").read_text())
        return None

    def service_state(self, node: str, name: str) -> dict:
        folder = self.home(node) / ".saf" / "services" / name
        with contextlib.suppress(OSError, ValueError):
            return json.loads((folder / "state.json").read_text())
        return {}

    def kept(self, node: str) -> dict[int, str]:
        """pid here -> command line of each live process the node's records name (saf's
        supervisors' pid files, their programs' state, the model servers' records), each
        checked to run in the node's own namespace."""
        pids: list[int] = []
        home = self.home(node) / ".saf"
        for folder in (home / "services").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                pids.append(int((folder / "supervisor.pid").read_text()))
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                pids.append(int(json.loads((folder / "state.json").read_text())["pid"]))
        for record in (home / "serve").glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                pids.append(int(json.loads(record.read_text())["pid"]))
        inside = {p.pid: procs.cmdline(p) for p in self.in_namespace(node)}
        here = [self.here(node, pid) for pid in pids]
        return {pid: inside[pid] for pid in here if pid in inside}

    def placed_on(self) -> list[str]:
        return [n for n in NAMES if self.record(n, self.placed_port)]

    def ray(self, node: str) -> dict[int, str]:
        """pid here -> command line of each Ray process in the node's namespace: those that
        name Ray's folder, and those `ray start` left with saf's marker in their environment
        (Ray's client server and dashboard agents name no folder)."""
        found = {}
        for proc in self.in_namespace(node):
            line = procs.cmdline(proc)
            with contextlib.suppress(psutil.Error):
                if f"{RAY_TEMP}/" in line or proc.environ().get("SAF_RAY_DIR") == RAY_TEMP:
                    found[proc.pid] = line
        return found

    def ray_status(self) -> str:
        """`ray status`, Ray's own tool, run inside the head's namespace."""
        ray = str(Path(sys.executable).parent / "ray")
        done = self.net.exec("alpha", [ray, "status", "--address",
                                       f"{self.net.address('alpha')}:6379"],
                             check=False, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


def holding(folder: Path, secret: str) -> list[Path]:
    """Every regular file under `folder` whose bytes hold `secret`."""
    needle = secret.encode()
    found = []
    for path in sorted(folder.rglob("*")):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                found.append(path)
    return found


def _gone(pid: int) -> bool:
    """Whether process `pid` has ended (its node's init reaps it at once, or not yet)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.read().decode()




@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from tests.helpers.tiny_gguf import write_tiny_llama

    root = tmp_path_factory.mktemp("upnetns")
    # Each node a machine of its own (its /tmp, /dev/shm, process table): Ray keeps its
    # files in /tmp/ray and finds its processes by their command lines, as on real machines.
    with up_netns(root, Stack, own_machine=True) as stack:
        stack.marker = f"saf-up-netns-{uuid.uuid4().hex[:12]}"
        (root / "beat.py").write_text(BEAT)
        (root / "prepare.toml").write_text(PREPARE)
        secrets = root / "secrets.env"
        secrets.write_text(f"HF_TOKEN={TOKEN}\n")
        secrets.chmod(0o600)
        model = write_tiny_llama(root / "tiny.gguf")
        # Each node has its own ports (its own namespace): the same numbers on all three.
        stack.tiny_port, stack.placed_port = free_port(), free_port()
        declared = {
            "up": {"steps": [{"recipe": str(root / "prepare.toml")}]},
            "ray": {"head": "alpha", "resources": RESOURCES},
            "services": [{"name": "beat", "on": "all",
                          "command": f"{sys.executable} {root}/beat.py {stack.marker}",
                          "env": {"MODE": "test"}, "env_file": str(secrets),
                          "restart": "always", "check": "test -s ~/heartbeat"}],
            "models": [{"name": "tiny", "engine": "llama-cpp-python", "model": str(model),
                        "on": "gamma", "port": stack.tiny_port, "ctx_size": 256,
                        "persist": False, "env_file": str(secrets)},
                       {"name": "placed", "engine": "llama-cpp-python", "model": str(model),
                        "placement": "auto", "port": stack.placed_port, "ctx_size": 256}],
        }
        with stack.net.inventory_path.open("a") as f:
            f.write("\n" + tomli_w.dumps(declared))
        yield stack


@pytest.fixture(autouse=True)
def _in_order(stack: Stack, request: pytest.FixtureRequest) -> Iterator[None]:
    yield from in_order(stack, request)


def test_up_brings_everything_into_the_namespaces(stack: Stack) -> None:
    first = stack.saf("up", "-v")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "plan:" in first.stdout
    assert "3 nodes ALIVE" in first.stdout, first.stdout
    for node in NAMES:  # each node's Ray in its own namespace, its files in its own /tmp/ray
        assert stack.ray(node), (node, procs.describe(stack.in_namespace(node)))
        # One raylet's log in the node's Ray folder: its own (where nodes share a folder,
        # Ray numbers the others' raylet.1.out, raylet.2.out beside it).
        logs = stack.net.exec(node, ["ls", f"{RAY_TEMP}/session_latest/logs"]).stdout.split()
        assert [f for f in logs if re.fullmatch(r"raylet.*\.out", f)] == ["raylet.out"], logs
    for node in NAMES:
        assert (stack.home(node) / ".saf" / "prepared").exists(), node
        # The service's program runs inside the node's own namespace, as the record says.
        beat = stack.running(node, f"beat.py {stack.marker}")
        assert len(beat) == 1, (node, procs.describe(stack.in_namespace(node)))
        assert stack.here(node, stack.service_state(node, "beat").get("pid")) == beat[0].pid
        before = stack.beats(node)
        assert until(lambda n=node, b=before: stack.beats(n) > b + 2), f"{node} does not beat"
        # Its secret reached it through the env_file, not its command line.
        assert beat[0].environ().get("HF_TOKEN") == TOKEN
        assert beat[0].environ().get("MODE") == "test"
        assert TOKEN not in procs.cmdline(beat[0])
        secret = stack.home(node) / ".saf" / "env" / "beat.env"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    # tiny: on gamma alone, answering inside gamma's namespace (the server's 127.0.0.1).
    assert [n for n in NAMES if stack.record(n, stack.tiny_port)] == ["gamma"]
    tiny = stack.running("gamma", f"--port {stack.tiny_port}")
    assert len(tiny) == 1, procs.describe(stack.in_namespace("gamma"))
    assert tiny[0].pid == stack.here("gamma", stack.record("gamma", stack.tiny_port)["pid"])
    assert tiny[0].environ().get("HF_TOKEN") == TOKEN
    assert isinstance(stack.answers("gamma", stack.tiny_port), str)
    assert stack.answers("alpha", stack.tiny_port) is None  # alpha's 127.0.0.1 is its own
    # placed: on one node saf chose, answering there, kept by saf's supervisor.
    placed_on = stack.placed_on()
    assert len(placed_on) == 1, placed_on
    node = placed_on[0]
    assert stack.running(node, f"--port {stack.placed_port}")
    assert isinstance(stack.answers(node, stack.placed_port), str)
    kept = stack.record(node, stack.placed_port) or {}
    assert (kept.get("kept") or {}).get("service") == "model-placed", kept
    for other in NAMES:
        if other != node:
            assert not stack.running(other, f"--port {stack.placed_port}"), other


def test_status_tells_what_runs(stack: Stack) -> None:
    status = stack.status()
    assert status["as_declared"] is True, json.dumps(status, indent=1)
    assert {n["node"]: n["verdict"] for n in status["nodes"]} == {
        n: "as declared" for n in NAMES}
    services = {s["node"]: s for s in status["services"] if s["service"] == "beat"}
    assert sorted(services) == NAMES
    for node, row in services.items():
        assert row["verdict"] == "not kept across reboots", row
        assert row["manager"] == "detached", row
        assert row["kept_across_reboots"] is False, row
        assert row["check"] == "ok", row
        assert [stack.here(node, row["pid"])] == [
            p.pid for p in stack.running(node, f"beat.py {stack.marker}")]
    models = {m["model"]: m for m in status["models"]}
    assert sorted(models) == ["placed", "tiny"], status["models"]
    tiny, placed = models["tiny"], models["placed"]
    assert (tiny["node"], tiny["port"], tiny["answers"]) == ("gamma", stack.tiny_port, True)
    assert tiny["verdict"] == "not kept across reboots", tiny  # detached: persist = false
    assert (placed["node"], placed["answers"]) == (stack.placed_on()[0], True), placed
    assert placed["verdict"] == "not kept across reboots", placed
    assert placed["engine"] == tiny["engine"] == "llama-cpp-python"
    ray = status["ray"]
    assert ray["declared"] is True, ray
    assert not ray["problem"], ray
    rows = {r["node"]: r for r in ray["nodes"]}
    assert sorted(rows) == NAMES, ray
    for node, row in rows.items():
        assert row["verdict"] == "as declared", row
        assert row["head"] is (node == "alpha"), row
        assert row["declared"] == RESOURCES[node], row
        for name, amount in RESOURCES[node].items():
            assert row["found"].get(name) == amount, row
    # Ray's own word, from inside the head's namespace: three nodes, the declared resources.
    said = stack.ray_status()
    assert len(re.findall(r"^ 1 node_", said, re.M)) == 3, said
    for name, amount in (("Head", "1.0"), ("Apple", "1.0"), ("Banana", "2.0")):
        assert re.search(rf"^ [\d.]+/{amount} {name}$", said, re.M), said
    plain = stack.saf("status")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    for name in ("beat", "tiny", "placed", *NAMES):
        assert name in plain.stdout


def test_a_second_up_does_nothing_and_says_so(stack: Stack) -> None:
    kept = {n: stack.kept(n) for n in NAMES}
    # Three beats and their supervisors, tiny's server, placed's server and its supervisor.
    assert sum(map(len, kept.values())) == 9, kept
    ray = {n: stack.ray(n) for n in NAMES}
    second = stack.saf("up")
    assert second.returncode == 0, second.stdout + second.stderr
    assert re.search(r"nothing to do: 3 nodes, 1 \[up\] recipe, ray, 1 service, 2 models "
                     r"as declared", second.stdout), second.stdout
    assert stack.saf("up", "--check").returncode == 0
    for node in NAMES:  # nothing started or stopped anywhere, Ray included
        assert stack.kept(node) == kept[node], node
        assert stack.ray(node) == ray[node], node


def test_the_secret_reaches_only_the_nodes_0600_files(stack: Stack) -> None:
    """While everything runs: a recording of the agents' streams, `saf serve`'s /metrics,
    the other read-only faces, then every file of this test's tree (the state, cache and
    config folders with the run logs, the recording, the node homes with the services' logs
    and records, the SSH servers' logs) searched for the token."""
    recording = stack.root / "cockpit.jsonl"
    recorded = stack.saf("record", str(recording), "--seconds", "3", "--interval", "0.5")
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    header = json.loads(recording.read_text().splitlines()[0])
    assert sorted(n["name"] for n in header["nodes"]) == NAMES
    assert len(recording.read_text().splitlines()) > 3  # frames came from the nodes

    port = free_port()
    log = (stack.root / "serve.log").open("w")
    serve = subprocess.Popen([sys.executable, "-m", "saf", "serve", "--metrics",
                              f"127.0.0.1:{port}", "--interval", "0.5"], env=stack.env,
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        metrics: list[str] = []

        def scraped() -> bool:
            assert serve.poll() is None, (stack.root / "serve.log").read_text()
            with contextlib.suppress(OSError):
                metrics.append(_get(f"http://127.0.0.1:{port}/metrics"))
            return bool(metrics) and all(f'"{n}"' in metrics[-1] for n in NAMES)

        assert until(scraped, 90), metrics[-1:] or (stack.root / "serve.log").read_text()
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(20)
        except subprocess.TimeoutExpired:
            procs.kill_tree([psutil.Process(serve.pid)])
        log.close()
    (stack.root / "metrics.txt").write_text(metrics[-1])
    assert TOKEN not in metrics[-1]

    for args in (("top", "--once", "--json"), ("top", "--once"), ("models", "--json"),
                 ("models",), ("runs",), ("up", "--check", "-v")):
        done = stack.saf(*args)
        assert done.returncode == 0, done.stdout + done.stderr

    for text in stack.outputs:
        assert TOKEN not in text, text
    source = stack.root / "secrets.env"
    homes = [stack.home(n) for n in NAMES]
    found = [p for p in holding(stack.root, TOKEN) if p != source]
    expected = [h / ".saf" / "env" / "beat.env" for h in homes]
    expected.append(stack.home("gamma") / ".saf" / "env" / "models" / "tiny.env")
    assert sorted(found) == sorted(expected)
    for path in found:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_killed_parts_are_reported_and_kept_ones_restarted(stack: Stack) -> None:
    # beat on beta: its program killed -9; saf's supervisor starts it again (restart always).
    old = stack.service_state("beta", "beat")["pid"]  # beta's own pid for it
    old_here = stack.here("beta", old)
    assert stack.running("beta", f"beat.py {stack.marker}")[0].pid == old_here
    assert old_here is not None
    os.kill(old_here, signal.SIGKILL)

    def restarted() -> bool:
        now = stack.running("beta", f"beat.py {stack.marker}")
        return len(now) == 1 and now[0].pid != old_here and \
            stack.here("beta", stack.service_state("beta", "beat").get("pid")) == now[0].pid

    assert until(restarted), procs.describe(stack.in_namespace("beta"))
    before = stack.beats("beta")
    assert until(lambda: stack.beats("beta") > before + 2)

    # tiny (detached, persist = false) killed -9: nothing starts it again; down at once.
    tiny = stack.here("gamma", stack.record("gamma", stack.tiny_port)["pid"])
    assert tiny is not None
    os.kill(tiny, signal.SIGKILL)
    assert until(lambda: _gone(tiny))
    # placed (kept by saf's supervisor as service model-placed) killed -9: started again.
    # Its record keeps the first server's pid; the supervisor's state names the live one.
    where = stack.placed_on()[0]
    placed = stack.here(where, stack.service_state(where, "model-placed")["pid"])
    assert placed is not None
    assert [p.pid for p in stack.running(where, f"--port {stack.placed_port}")] == [placed]
    os.kill(placed, signal.SIGKILL)

    status = stack.status()
    assert status["as_declared"] is False
    rows = {m["model"]: m for m in status["models"]}
    assert rows["tiny"]["verdict"].startswith("down"), rows["tiny"]
    assert rows["tiny"]["answers"] is False
    assert stack.answers("gamma", stack.tiny_port) is None
    beta = next(s for s in status["services"] if (s["service"], s["node"]) == ("beat", "beta"))
    assert beta["restarts"] >= 1, beta
    assert beta["pid"] == stack.service_state("beta", "beat")["pid"] != old, beta
    assert beta["verdict"] == "not kept across reboots", beta

    assert until(lambda: isinstance(stack.answers(where, stack.placed_port), str), 120)
    again = stack.here(where, stack.service_state(where, "model-placed")["pid"])
    assert again != placed
    assert [p.pid for p in stack.running(where, f"--port {stack.placed_port}")] == [again]
    row = next(m for m in stack.status()["models"] if m["model"] == "placed")
    assert row["verdict"] == "not kept across reboots", row
    assert row["restarts"] >= 1, row


def test_check_names_the_drift(stack: Stack) -> None:
    # By hand, on alpha: the service stopped (its supervisor and program killed -9) and its
    # files removed. tiny on gamma is still down from the test before.
    folder = stack.home("alpha") / ".saf" / "services" / "beat"
    pids = [stack.here("alpha", int((folder / "supervisor.pid").read_text())),
            stack.here("alpha", stack.service_state("alpha", "beat")["pid"])]
    assert all(pid in stack.kept("alpha") for pid in pids), (pids, stack.kept("alpha"))
    for pid in pids:
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
    assert until(lambda: not stack.running("alpha", f"beat.py {stack.marker}"))
    shutil.rmtree(folder)
    drift = stack.saf("up", "--check")
    assert drift.returncode == 2, drift.stdout + drift.stderr
    assert re.search(r"alpha\s+beat: would change", drift.stdout), drift.stdout
    assert re.search(r"gamma\s+model tiny: would change", drift.stdout), drift.stdout
    assert not re.search(r"(beta|gamma)\s+beat: would change", drift.stdout), drift.stdout
    assert "model placed: would change" not in drift.stdout, drift.stdout
    assert "ray: would change" not in drift.stdout, drift.stdout
    rows = {(s["node"], s["service"]): s["verdict"] for s in stack.status()["services"]}
    assert rows[("alpha", "beat")] == "missing", rows


def test_down_leaves_nothing_in_any_namespace(stack: Stack) -> None:
    assert all(stack.ray(n) for n in NAMES)  # Ray still ran on every node
    down = stack.saf("down")
    assert down.returncode == 0, down.stdout + down.stderr
    for node in NAMES:  # no Ray process in any namespace
        assert not stack.ray(node), (node, stack.ray(node))
    for node in NAMES:  # only the node's SSH server is left in its namespace
        assert until(lambda n=node: not stack.in_namespace(n), 20), \
            (node, procs.describe(stack.in_namespace(node)))
        assert not (stack.home(node) / ".saf" / "env" / "beat.env").exists()
    assert not (stack.home("gamma") / ".saf" / "env" / "models" / "tiny.env").exists()
    check = stack.saf("up", "--check")
    assert check.returncode == 2, check.stdout + check.stderr
    for node in NAMES:
        assert re.search(rf"{node}\s+beat: would change", check.stdout), check.stdout
    assert re.search(r"gamma\s+model tiny: would change", check.stdout), check.stdout
    assert re.search(r"model placed: would change", check.stdout), check.stdout
    status = stack.status()
    assert {s["verdict"] for s in status["services"]} == {"missing"}, status["services"]
    assert {m["verdict"] for m in status["models"]} == {"missing"}, status["models"]
    assert not [r for r in status["ray"]["nodes"] if r["found"] is not None], status["ray"]
    # And the secret went with them: no file here holds it but the operator's own.
    assert holding(stack.root, TOKEN) == [stack.root / "secrets.env"]
    for text in stack.outputs:
        assert TOKEN not in text, text
