"""The `service` step where the node has no init system saf can use (this machine: no
systemd running; the node's facts root is an empty folder, so a CI machine that boots
systemd is never given a unit): saf's supervisor, for real, over a real SSH server on
loopback. A small program writes a heartbeat; kill -9 it and the supervisor starts it again
(restart = "always") or not ("no"); `state = "absent"` leaves nothing running.

Processes are found only through what this test started: the pids the supervisor writes in
the test's own node home, each checked to carry the test's unique marker in its command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from saf.cluster.service import read_status
from saf.cluster.units import ServiceSpec, env_file_text
from saf.demo.node_server import NodeServer
from saf.events import Event
from saf.fleet import Fleet
from saf.inventory import load_inventory
from saf.recipe import load_recipe
from saf.recipe.events import NodeStepFinished
from saf.recipe.prepare import prepare
from saf.recipe.runner import Runner
from tests.helpers.servers import SSHD, ClientKeys, LoopThread, OpenSSHServer, write_inventory

BEAT = """import os, sys, time
while True:
    with open(sys.argv[1], "a") as f:
        f.write("%d %f\\n" % (os.getpid(), time.time()))
    time.sleep(0.2)
"""


class Node:
    """A loopback node: saf's own SSH server with a home in the test's folder, or OpenSSH's
    sshd (`openssh`), whose sessions run in the real home: there the service's name is
    unique to the test and its folder is removed at the end."""

    def __init__(self, root: Path, *, openssh: bool = False) -> None:
        self.root = root
        self.marker = f"saf-beat-{uuid.uuid4().hex[:12]}"
        self.service = f"t{uuid.uuid4().hex[:12]}" if openssh else "beat"
        (root / "facts").mkdir()  # no /run/systemd/system: no init system saf may use
        self.keys = ClientKeys(root / "keys")
        self.loop = LoopThread()
        self.sshd: OpenSSHServer | None = None
        self.server: NodeServer | None = None
        if openssh:
            self.home = Path(os.path.expanduser("~"))
            self.sshd = OpenSSHServer(root / "sshd", self.keys,
                                      f"SetEnv SAF_FACTS_ROOT={root / 'facts'}")
            port = self.sshd.port
        else:
            self.home = root / "home"
            self.home.mkdir(parents=True)
            self.server = NodeServer("n", self.home, authorized_keys=[self.keys.key],
                                     env={"SAF_FACTS_ROOT": str(root / "facts")})
            self.loop.call(self.server.start())
            port = self.server.port
            self.keys.trust(port,
                            self.server.host_key.export_public_key("openssh").decode().strip())
        self.inventory = write_inventory(root / "saf.toml", self.keys, [
            {"name": "n", "host": "127.0.0.1", "port": port}], python=sys.executable)
        (root / "beat.py").write_text(BEAT)
        self.beats = root / "beats.log"

    @property
    def folder(self) -> Path:
        return self.home / ".saf" / "services" / self.service

    def recipe(self, restart: str, state: str = "present") -> Path:
        path = self.root / f"service-{restart}-{state}.toml"
        path.write_text(
            f'name = "svc"\n\n[[steps]]\nkind = "service"\nservice = "{self.service}"\n'
            f'command = "{sys.executable} {self.root}/beat.py {self.beats} {self.marker}"\n'
            f'restart = "{restart}"\nstate = "{state}"\nsettle = 1\n')
        return path

    def ours(self, pid: int | None) -> psutil.Process | None:
        """The process `pid` if it is alive and this test's (its command line holds the
        marker or the node home), else None."""
        if not pid:
            return None
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            line = " ".join(proc.cmdline())
            if proc.status() != psutil.STATUS_ZOMBIE and (
                    self.marker in line or str(self.folder) in line):
                return proc
        return None

    def state(self) -> dict:
        try:
            return json.loads((self.folder / "state.json").read_text())
        except (OSError, ValueError):
            return {}

    def supervisor(self) -> psutil.Process | None:
        try:
            return self.ours(int((self.folder / "supervisor.pid").read_text()))
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        for proc in (self.supervisor(), self.ours(self.state().get("pid"))):
            if proc is not None:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
        if self.server is not None:
            self.loop.call(self.server.stop())
        if self.sshd is not None:
            self.sshd.stop()
            shutil.rmtree(self.folder, ignore_errors=True)
        self.loop.close()


@pytest.fixture(params=["asyncssh"])
def node(tmp_path: Path, request: pytest.FixtureRequest):
    if request.param == "openssh" and not SSHD:
        pytest.skip("OpenSSH sshd is not installed")
    made = Node(tmp_path, openssh=request.param == "openssh")
    seen = facts_root(made).strip() if made.sshd is not None else str(tmp_path / "facts")
    if seen != str(tmp_path / "facts"):
        # Without it a node whose systemd runs (a CI machine) would get a real unit.
        made.close()
        pytest.fail(f"this sshd does not pass SetEnv SAF_FACTS_ROOT to its sessions: {seen!r}")
    try:
        yield made
    finally:
        made.close()


def facts_root(node: Node) -> str:
    async def go() -> str:
        async with Fleet(load_inventory(node.inventory)) as fleet:
            return (await fleet.connector("n").run('printf %s "$SAF_FACTS_ROOT"')).stdout
    return asyncio.run(go())


def run(node: Node, recipe: Path, *, check: bool = False) -> NodeStepFinished:
    async def go() -> NodeStepFinished:
        events: list[Event] = []
        async with Fleet(load_inventory(node.inventory)) as fleet:
            prepared = await prepare(load_recipe(recipe), fleet, {}, None)
            await Runner(prepared, fleet, events.append, run_id="t", check=check).run()
        return next(e for e in events if isinstance(e, NodeStepFinished))
    return asyncio.run(go())


def wait_for(what, within: float = 20.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {within} s: {what.__doc__ or what}")


def beating_pid(node: Node) -> int:
    """The pid of the newest heartbeat once it has beaten twice more."""
    def two_more() -> int | None:
        lines = node.beats.read_text().splitlines() if node.beats.exists() else []
        return int(lines[-1].split()[0]) if len(lines) >= 2 else None
    node.beats.write_text("")
    return wait_for(two_more)


def status(node: Node):
    async def go():
        async with Fleet(load_inventory(node.inventory)) as fleet:
            conn = fleet.connector("n")
            return await read_status(conn.run, ServiceSpec(node.service, ("/x",)),
                                     sys.executable)
    return asyncio.run(go())


@pytest.mark.parametrize("node", ["asyncssh", "openssh"], indirect=True)
def test_supervisor_keeps_restart_always_and_down_leaves_nothing(node: Node) -> None:
    check = run(node, node.recipe("always"), check=True)
    assert check.status == "changed"
    assert "saf's supervisor (not kept across reboots)" in check.message
    assert not node.folder.exists()  # --check changed nothing

    first = run(node, node.recipe("always"))
    assert first.status == "changed", (first.message, first.tail)
    assert "not kept across reboots" in first.message
    pid = beating_pid(node)
    child = node.ours(pid)
    assert child is not None
    assert node.marker in " ".join(child.cmdline())
    assert node.supervisor() is not None

    again = run(node, node.recipe("always"))
    assert again.status == "ok", again.message  # nothing changed: nothing done
    assert node.ours(pid) is not None
    assert node.state()["pid"] == pid

    os.kill(pid, signal.SIGKILL)
    restarted = wait_for(lambda: node.state().get("restarts") == 1 and node.state().get("pid"))
    assert restarted != pid
    assert beating_pid(node) == restarted  # the new one beats
    seen = status(node)
    assert (seen.state, seen.restarts, seen.pid, seen.kept_across_reboots) == (
        "active", 1, restarted, False)

    supervisor = node.supervisor()
    down = run(node, node.recipe("always", "absent"))
    assert down.status == "changed", (down.message, down.tail)
    assert node.ours(restarted) is None
    assert supervisor is not None
    assert node.ours(supervisor.pid) is None
    assert not node.folder.exists()
    assert run(node, node.recipe("always", "absent")).status == "skipped"


def test_a_python_given_with_arguments_runs_the_supervisor(node: Node) -> None:
    """The inventory may name the node's python as a command with arguments (`/usr/bin/env
    python3`): the supervisor runs through it, as every other program saf runs there does."""
    text = node.inventory.read_text()
    node.inventory.write_text(text.replace(f'"{sys.executable}"',
                                           f'"/usr/bin/env {sys.executable}"'))
    assert f"/usr/bin/env {sys.executable}" in node.inventory.read_text()
    first = run(node, node.recipe("always"))
    assert first.status == "changed", (first.message, first.tail)
    assert node.ours(beating_pid(node)) is not None
    assert run(node, node.recipe("always")).status == "ok"  # its status was read through it
    down = run(node, node.recipe("always", "absent"))
    assert down.status == "changed", (down.message, down.tail)
    assert not node.folder.exists()


def test_restart_no_is_not_restarted(node: Node) -> None:
    assert run(node, node.recipe("no")).status == "changed"
    pid = beating_pid(node)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: node.state().get("last_exit") == -9)
    wait_for(lambda: node.supervisor() is None)  # the supervisor is done too
    assert node.state()["restarts"] == 0
    assert node.ours(pid) is None
    seen = status(node)
    assert (seen.state, seen.active, seen.last_exit) == ("failed", False, "-9")
    # The next run starts it again, as `saf up` would.
    rerun = run(node, node.recipe("no"))
    assert rerun.status == "changed", rerun.message
    assert node.ours(beating_pid(node)) is not None
    assert run(node, node.recipe("no", "absent")).status == "changed"


def test_a_crash_loop_fails_the_step_with_its_log(node: Node) -> None:
    """restart = "on-failure" and a program that prints and exits 3: the supervisor keeps
    starting it, the step fails (it is not active after settling) with the service's own
    last lines as evidence, and down still leaves nothing."""
    crash = node.root / "crash.py"
    crash.write_text("import sys\nprint('boom from', sys.argv[1], flush=True)\nsys.exit(3)\n")
    path = node.root / "crash.toml"
    path.write_text('[[steps]]\nkind = "service"\nservice = "beat"\n'
                    f'command = "{sys.executable} {crash} {node.marker}"\n'
                    'restart = "on-failure"\nsettle = 3\n')
    failed = run(node, path)
    assert failed.status == "failed"
    # Seen between two tries, or running again after one (restarts counted): a crash loop.
    assert failed.message.startswith(("saf-beat is activating (waiting to restart)",
                                      "saf-beat was restarted ")), failed.message
    assert f"boom from {node.marker}" in failed.tail
    wait_for(lambda: node.state().get("restarts", 0) >= 1)
    assert node.state()["last_exit"] == 3
    supervisor = node.supervisor()
    assert supervisor is not None
    path.write_text(path.read_text() + 'state = "absent"\n')
    assert run(node, path).status == "changed"
    assert node.ours(supervisor.pid) is None
    assert not node.folder.exists()


def test_health_decides_ok(node: Node) -> None:
    """A health command that fails on a running service: the rerun restarts it."""
    path = node.recipe("always")
    path.write_text(path.read_text() + f'health = "test -s {node.beats}"\n')
    assert run(node, path).status == "changed"
    pid = beating_pid(node)
    assert run(node, path).status == "ok"
    os.kill(pid, signal.SIGSTOP)  # alive, but no longer beating: the check fails
    node.beats.unlink()
    try:
        again = run(node, path, check=True)
        assert again.status == "changed"
        assert again.message.startswith("would restart saf-beat: health check failed")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert run(node, node.recipe("always", "absent")).status == "changed"


def test_secrets_reach_the_service_and_no_output(node: Node) -> None:
    """env_file: the supervisor reads the secrets file (as sh would) into the service's
    environment; the token appears in no event of the run."""
    token = f"hf_{uuid.uuid4().hex}$`\"' x"
    secrets = node.root / "secrets.env"
    secrets.write_text(env_file_text({"HF_TOKEN": token}))
    secrets.chmod(0o600)
    seen = node.root / "seen.txt"
    show = node.root / "show.py"
    show.write_text("import os, sys, time\nopen(sys.argv[1], 'w').write("
                    "os.environ['HF_TOKEN'] + '|' + os.environ['MODE'])\ntime.sleep(600)\n")
    path = node.root / "secret.toml"
    path.write_text('[[steps]]\nkind = "service"\nservice = "beat"\n'
                    f'command = "{sys.executable} {show} {seen} {node.marker}"\n'
                    f'env_file = "{secrets}"\nenv = {{ MODE = "plain" }}\nsettle = 0.5\n')
    events: list[Event] = []

    async def go() -> None:
        async with Fleet(load_inventory(node.inventory)) as fleet:
            prepared = await prepare(load_recipe(path), fleet, {}, None)
            await Runner(prepared, fleet, events.append, run_id="t", check=False).run()
    asyncio.run(go())
    assert wait_for(lambda: seen.exists() and seen.read_text()) == f"{token}|plain"
    assert not any(token in json.dumps(e.to_json()) for e in events)
    path.write_text(path.read_text() + 'state = "absent"\n')
    assert run(node, path).status == "changed"
