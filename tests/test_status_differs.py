"""`saf status` compares a running service with saf.toml, for real on a loopback node (saf's
SSH server, no init system: saf's supervisor keeps the service): after `saf up`, the
declaration's command, env, restart policy and a secret are changed by hand; each time
`saf status` says `differs` naming the field (a secret only as `env`, its value never
shown), `saf up --check` exits 2 naming it, and `saf up` rewrites and restarts the service.

Processes are found through the node's own records, each checked to be this test's."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import tomli_w

from tests.helpers import procs
from tests.helpers.servers import AsyncsshServers, ClientKeys, write_inventory

BEAT = """import sys, time
while True:
    time.sleep(0.5)
"""


@dataclass
class One:
    root: Path
    inventory: Path
    home: Path
    marker: str
    env: dict[str, str]
    outputs: list[str] = field(default_factory=list)
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    def saf(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "saf", *args], env=self.env,
                              capture_output=True, text=True, timeout=180)
        self.outputs.append(done.stdout + done.stderr)
        return done

    def service(self) -> dict:
        out = self.saf("status", "--json")
        data = json.loads(next(line for line in out.stdout.splitlines()
                               if line.startswith("{")))
        assert out.returncode == (0 if data["as_declared"] else 1), out.stderr
        (row,) = data["services"]
        return row

    def program(self) -> psutil.Process:
        """The service's program, by the supervisor's record (checked to be this test's)."""
        state = self.home / ".saf" / "services" / "beat" / "state.json"
        proc = psutil.Process(int(json.loads(state.read_text())["pid"]))
        assert self.marker in procs.cmdline(proc)
        self.seen[proc.pid] = proc
        with contextlib.suppress(OSError, ValueError):
            pid = int((state.parent / "supervisor.pid").read_text())
            self.seen[pid] = psutil.Process(pid)
        return proc

    def edit(self, old: str, new: str) -> None:
        text = self.inventory.read_text()
        assert old in text
        self.inventory.write_text(text.replace(old, new))


@pytest.fixture
def one(tmp_path: Path) -> Iterator[One]:
    (tmp_path / "facts").mkdir()  # no init system saf may use: saf's supervisor runs it
    keys = ClientKeys(tmp_path / "operator")
    servers = AsyncsshServers(tmp_path, keys, ["alpha"],
                              env={"SAF_FACTS_ROOT": str(tmp_path / "facts")})
    marker = f"saf-differs-{uuid.uuid4().hex[:12]}"
    (tmp_path / "beat.py").write_text(BEAT)
    (tmp_path / "secrets.env").write_text("TOKEN=first-secret-value\n")
    inventory = write_inventory(tmp_path / "saf.toml", keys, [
        {"name": "alpha", "host": "127.0.0.1", "port": servers.port("alpha")}])
    with inventory.open("a") as f:
        f.write("\n" + tomli_w.dumps({"services": [{
            "name": "beat", "on": "alpha", "command": f"{sys.executable} {tmp_path}/beat.py "
            f"{marker}", "env": {"MODE": "one"}, "env_file": "secrets.env",
            "restart": "always"}]}))
    env = {**os.environ, "SAF_INVENTORY": str(inventory),
           "SAF_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1", "COLUMNS": "200"}
    made = One(tmp_path, inventory, servers.home("alpha"), marker, env)
    try:
        yield made
    finally:
        with contextlib.suppress(Exception):
            made.saf("down", "--wait", "2")
        procs.kill_tree([p for p in made.seen.values() if procs.alive(p)])
        servers.stop()


def _up(one: One) -> psutil.Process:
    done = one.saf("up")
    assert done.returncode == 0, done.stdout + done.stderr
    row = one.service()
    assert row["verdict"] == "not kept across reboots", row  # as declared, under saf's own
    return one.program()


def _drift(one: One, why: str, plan: str) -> None:
    row = one.service()
    assert (row["verdict"], row["why"]) == ("differs", why), row
    check = one.saf("up", "--check")
    assert check.returncode == 2, check.stdout + check.stderr
    assert re.search(rf"alpha\s+beat: would change: would update .*\({plan}\)$", check.stdout,
                     re.M), check.stdout


def test_a_changed_command_env_restart_or_secret_differs_and_up_restarts(one: One) -> None:
    first = _up(one)
    assert one.service()["why"] == ""

    one.edit(f"beat.py {one.marker}", f"beat.py {one.marker} --louder")
    _drift(one, "command differs from saf.toml", "command differs")
    second = _up(one)
    assert second.pid != first.pid
    assert "--louder" in procs.cmdline(second)

    one.edit('MODE = "one"', 'MODE = "two"')
    one.edit('restart = "always"', 'restart = "on-failure"')
    _drift(one, "env, restart differ from saf.toml", "env, restart differ")
    third = _up(one)
    assert third.environ().get("MODE") == "two"

    # A secret changed in the env_file: the unit holds only its digest, so `env` differs.
    (one.root / "secrets.env").write_text("TOKEN=second-secret-value\n")
    _drift(one, "env differs from saf.toml", "env differs")
    fourth = _up(one)
    assert fourth.environ().get("TOKEN") == "second-secret-value"

    assert one.saf("up", "--check").returncode == 0
    for text in one.outputs:
        assert "secret-value" not in text
