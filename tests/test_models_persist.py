"""Model servers kept (`saf run models --var persist=true`) for real: llama-cpp-python's
server on the generated tiny GGUF, on a loopback node with no init system saf may use (its
facts root is an empty folder), so saf's supervisor keeps it. kill -9 the server: it is
started again, answers again, and `saf models` counts the restart; `saf models stop` removes
the service. Not kept (persist = false): kill -9, and `saf models` says it is down.

Processes are found only through the records and the supervisor's files in the node's own
home (the test's temp folder), each checked to be this test's (its command line names the
test's model file).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.helpers.servers import AsyncsshServers, ClientKeys, free_port, write_inventory

pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] is not installed")
pytest.importorskip("gguf", reason="gguf is not installed (pip install -e '.[test]')")

from tests.helpers.tiny_gguf import write_tiny_llama


@dataclass
class Node:
    inventory: Path
    home: Path
    model: Path
    env: dict[str, str]

    def saf(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "saf", *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def serve(self, port: int, *extra: str) -> dict:
        done = self.saf("run", "models", "--json", "--var", "engine=llama-cpp-python",
                        "--var", f"model={self.model}", "--var", f"port={port}", *extra)
        finished = [e for e in map(json.loads, done.stdout.splitlines())
                    if e.get("event") == "node_step_finished"]
        assert len(finished) == 1, done.stdout + done.stderr
        return finished[0]

    def listed(self, port: int) -> dict:
        done = self.saf("models", "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        return next(e for e in map(json.loads, done.stdout.splitlines())
                    if e.get("port") == port)

    def ours(self, pid: object) -> psutil.Process | None:
        with contextlib.suppress(psutil.Error, TypeError, ValueError):
            proc = psutil.Process(int(pid))  # type: ignore[arg-type]
            if proc.status() != psutil.STATUS_ZOMBIE and \
                    str(self.model) in " ".join(proc.cmdline()):
                return proc
        return None

    def supervisor(self, service: str) -> psutil.Process | None:
        folder = self.home / ".saf" / "services" / service
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            proc = psutil.Process(int((folder / "supervisor.pid").read_text()))
            if str(folder) in " ".join(proc.cmdline()):
                return proc
        return None

    def cleanup(self) -> None:
        for folder in (self.home / ".saf" / "services").glob("*"):
            sup = self.supervisor(folder.name)
            if sup is not None:
                with contextlib.suppress(psutil.Error):
                    sup.kill()
        for record in (self.home / ".saf" / "serve").glob("*.json"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                proc = self.ours(json.loads(record.read_text())["pid"])
                if proc is not None:
                    os.killpg(proc.pid, signal.SIGKILL)


def wait_for(what, within: float) -> object:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"not within {within} s: {what.__doc__ or what}")


def answers(port: int) -> bool:
    with contextlib.suppress(OSError):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=3) as r:
            return r.status == 200
    return False


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    root = tmp_path_factory.mktemp("modelskept")
    keys = ClientKeys(root / "operator")
    (root / "facts").mkdir()  # no /run/systemd/system: no init system saf may use
    servers = AsyncsshServers(root, keys, ["alpha"],
                              env={"SAF_FACTS_ROOT": str(root / "facts")})
    inventory = write_inventory(root / "saf.toml", keys, [
        {"name": "alpha", "host": "127.0.0.1", "port": servers.port("alpha")}])
    (root / "models").mkdir()
    model = write_tiny_llama(root / "models" / "tiny-kept.gguf")
    env = {**os.environ, "SAF_INVENTORY": str(inventory), "SAF_STATE_DIR": str(root / "state"),
           "SAF_CONFIG_DIR": str(root / "config"), "COLUMNS": "200"}
    made = Node(inventory, servers.home("alpha"), model, env)
    try:
        yield made
    finally:
        made.cleanup()
        servers.stop()


def test_kept_server_is_restarted_and_counted_and_stop_removes_it(node: Node) -> None:
    port = free_port()
    check = node.serve(port, "--var", "persist=true", "--var", "server=tiny", "--check")
    assert check["status"] == "changed", check
    assert check["message"].startswith("would install saf's supervisor (not kept across "
                                       "reboots): llama-cpp-python as saf-model-tiny"), check
    assert not (node.home / ".saf" / "services" / "model-tiny").exists()
    first = node.serve(port, "--var", "persist=true", "--var", "server=tiny")
    assert first["status"] == "changed", first
    assert "kept by saf's supervisor (not kept across reboots) as saf-model-tiny" \
        in first["message"]
    record = json.loads((node.home / ".saf" / "serve" / f"{port}.json").read_text())
    assert record["kept"]["service"] == "model-tiny"
    assert record["kept"]["manager"] == "detached"
    listed = node.listed(port)
    assert listed["state"] == "ready"
    assert listed["kept"] == "model-tiny"
    assert listed["restarts"] == 0

    again = node.serve(port, "--var", "persist=true", "--var", "server=tiny")
    assert again["status"] == "skipped", again
    assert "kept by saf's supervisor" in again["message"]

    server = node.ours(listed["pid"])
    assert server is not None
    server.kill()

    def back() -> dict | None:
        """saf models lists it ready again, restarted once, with a new pid"""
        seen = node.listed(port)
        return seen if seen["state"] == "ready" and seen["restarts"] == 1 \
            and seen["pid"] != listed["pid"] else None
    seen = wait_for(back, 90)
    assert isinstance(seen, dict)
    assert node.ours(seen["pid"]) is not None
    assert answers(port)
    table = node.saf("models")
    assert "ready, 1 restart" in table.stdout, table.stdout

    sup = node.supervisor("model-tiny")
    assert sup is not None
    stopped = node.saf("models", "stop", f"alpha:{port}")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not (node.home / ".saf" / "services" / "model-tiny").exists()
    assert not (node.home / ".saf" / "serve" / f"{port}.json").exists()
    with contextlib.suppress(psutil.Error):
        sup.wait(15)
    assert node.ours(seen["pid"]) is None
    assert not sup.is_running() or sup.status() == psutil.STATUS_ZOMBIE


def test_a_detached_server_that_dies_is_reported_down(node: Node) -> None:
    port = free_port()
    first = node.serve(port)
    assert first["status"] == "changed", first
    listed = node.listed(port)
    assert listed["kept"] is None
    server = node.ours(listed["pid"])
    assert server is not None
    server.kill()
    server.wait(10)
    assert node.listed(port)["state"] == "exited"
    table = node.saf("models")
    assert "down (not kept)" in table.stdout, table.stdout
    assert f"alpha:{port}: the server died and nothing restarts it" in table.stdout
    node.saf("models", "stop", f"alpha:{port}")


async def test_the_models_screen_stops_and_restarts_a_kept_server_through_its_service(
        node: Node, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the Models screen (6), `s` on a server kept as service model-NAME stops that
    service (signalled, its supervisor would start the server again) and leaves it
    installed, saying saf.toml declares it; `r` restarts the service and waits until the
    server answers again."""
    from saf.screens.models import ModelsScreen

    from saf.inventory import load_inventory
    from tests.snapshot_apps._common import cockpit

    port = free_port()
    first = node.serve(port, "--var", "persist=true", "--var", "server=screen")
    assert first["status"] == "changed", first
    listed = node.listed(port)
    assert listed["kept"] == "model-screen"
    server = node.ours(listed["pid"])
    sup = node.supervisor("model-screen")
    assert server is not None
    assert sup is not None
    # The cockpit reads a saf.toml that declares this model (as `saf up` would keep it).
    declared = tmp_path / "saf.toml"
    declared.write_text(node.inventory.read_text() + f'\n[[models]]\nname = "screen"\n'
                        f'on = "alpha"\nengine = "llama-cpp-python"\nmodel = "{node.model}"\n'
                        f"port = {port}\n")
    monkeypatch.setenv("SAF_STATE_DIR", node.env["SAF_STATE_DIR"])
    app = cockpit("healthy-3-nodes.jsonl", inventory=load_inventory(declared))

    async def settle(screen: ModelsScreen, done) -> None:
        for _ in range(2400):
            await pilot.pause(0.05)
            if not screen.busy and done():
                return
        raise AssertionError("the screen did not get there")

    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("6")
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        await settle(screen, lambda: any(e.port == port for e in screen.endpoints))
        screen.selected = next(i for i, e in enumerate(screen.endpoints) if e.port == port)
        await pilot.press("s")
        await pilot.pause(0.2)
        await pilot.press("tab", "enter")
        await settle(screen, lambda: any("saf-model-screen stopped" in n.message
                                         for n in app._notifications))
        said = [n.message for n in app._notifications if "stopped" in n.message]
        assert said == [f"alpha:{port}: service saf-model-screen stopped; saf.toml declares "
                        "it, so the next `saf up` starts it again"], said
        # The supervisor ended with its server, and nothing started it again.
        with contextlib.suppress(psutil.Error):
            sup.wait(15)
        assert not sup.is_running() or sup.status() == psutil.STATUS_ZOMBIE
        with contextlib.suppress(psutil.Error):
            server.wait(15)
        assert node.supervisor("model-screen") is None
        assert (node.home / ".saf" / "services" / "model-screen" / "spec.json").exists()
        assert not answers(port)

        await settle(screen, lambda: any(e.port == port and not e.up
                                         for e in screen.endpoints))
        await pilot.press("r")
        await pilot.pause(0.2)
        await pilot.press("tab", "enter")
        await settle(screen, lambda: any("ready again" in n.message or "failed" in n.title
                                         for n in app._notifications))
        assert [n.title for n in app._notifications][-1] == "Restarted", \
            [n.message for n in app._notifications]
    again = node.listed(port)
    assert again["state"] == "ready"
    assert again["kept"] == "model-screen"
    assert again["pid"] != listed["pid"]
    assert node.ours(again["pid"]) is not None
    assert node.supervisor("model-screen") is not None
    assert answers(port)
    node.saf("models", "stop", f"alpha:{port}")
